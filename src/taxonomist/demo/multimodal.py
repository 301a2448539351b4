"""A small multimodal set whose labels need the image: scikit-image's sample faces.

scikit-image ships ``lfw_subset``: 100 faces from Labeled Faces in the Wild and 100 patches
of other things, 25 x 25 grey pixels. Each becomes a product-like record: a title that names
one of three departments (chosen at random) and the picture. The label is the department
*and* whether the picture is a face ("home/face", "home/object", ...), so the title alone
tells one of two labels apart at best (macro-F1 about 0.5) and the picture settles the other.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from taxonomist.errors import MissingExtraError

DEPARTMENTS = ("home", "garden", "sports")
WORDS = ("classic", "new", "deluxe", "compact", "premium", "basic", "large", "mini")


def make_multimodal_set(folder: Path, seed: int = 0) -> Path:
    """Write ``items.csv`` and ``images/*.png`` into ``folder``; the table's path."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise MissingExtraError("The multimodal sample set", "dev", "skimage") from None
    from PIL import Image

    rng = np.random.default_rng(seed)
    faces = lfw_subset()  # (200, 25, 25) floats in [0, 1]: 100 faces, then 100 others
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, pixels in enumerate(faces):
        name = f"images/{i:03d}.png"
        grey = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
        grey.resize((100, 100), Image.Resampling.BICUBIC).save(folder / name)
        department = str(rng.choice(DEPARTMENTS))
        kind = "face" if i < 100 else "object"
        title = f"{rng.choice(WORDS)} {department} item {rng.integers(1000)}"
        rows.append({"title": title, "photo": name, "label": f"{department}/{kind}"})
    table = folder / "items.csv"
    pd.DataFrame(rows).sample(frac=1.0, random_state=seed).to_csv(table, index=False)
    return table


def make_multimodal_zip(path: Path, seed: int = 0) -> Path:
    """The set as one zip: ``items.csv`` at its root beside ``images/``."""
    with tempfile.TemporaryDirectory() as tmp:
        table = make_multimodal_set(Path(tmp), seed)
        with zipfile.ZipFile(path, "w") as archive:
            archive.write(table, table.name)
            for image in sorted((table.parent / "images").iterdir()):
                archive.write(image, f"images/{image.name}")
    return path
