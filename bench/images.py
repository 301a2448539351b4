"""Benchmark: text + image against text alone, and the speed of the image features.

The set is ``taxonomist.demo.multimodal``'s: scikit-image's 100 faces and 100 other patches
(25 x 25 grey, from Labeled Faces in the Wild), each with a made-up product title naming one
of three departments; the label is the department and whether the picture is a face, so
the title alone settles one label of two. For each family, ``train()`` with a fixed trial
count reports its cross-validated (out-of-fold) macro-F1 with the image column and with it
ignored. Then EfficientNet-Lite0's throughput: cold (decoded and encoded) and from the cache.

    python bench/images.py
    python bench/images.py --families linear_svm,hybrid
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="linear_svm,logreg,lightgbm,embed,hybrid")
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TAXONOMIST_HOME", tempfile.mkdtemp(prefix="bench-images-home-"))
    import pandas as pd

    from taxonomist.demo.multimodal import make_multimodal_set
    from taxonomist.embed.image import embed_images
    from taxonomist.models.train import train

    folder = Path(tempfile.mkdtemp(prefix="bench-images-"))
    table = make_multimodal_set(folder)
    photos = pd.read_csv(table)["photo"].tolist()
    cache = folder / "cache.db"
    timings = {}
    for label in ("cold", "cached"):
        start = time.perf_counter()
        embed_images(photos, folder, cache)
        timings[f"{label}_images_per_second"] = round(len(photos) / (time.perf_counter() - start))
    print(json.dumps(timings), flush=True)
    out: dict = {"rows": len(photos), **timings, "macro_f1": {}}
    for family in args.families.split(","):
        scores = {}
        for label, roles in (("text", {"photo": "ignore"}), ("text+image", None)):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = train(
                    table, target="label", families=[family], trials=args.trials, roles=roles
                )
            scores[label] = round(result.metrics["f1_macro"], 4)
            scores[f"{label}_seconds"] = round(time.perf_counter() - start, 1)
        out["macro_f1"][family] = scores
        print(family, scores, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
