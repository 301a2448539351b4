"""How MiniLM embeds one question: speed on one thread and closeness to the reference vectors.

    python bench/question_embedding.py

300 random questions of SQuAD part 1, each embedded by every engine in turn (so the machine's
noise falls on all alike), after 20 warm-up questions. Cosine: to sentence-transformers' fp32
batch vectors (what the passages are embedded with). The shipped engines are ``torchscript``
and ``onnx-int8`` (TAXONOMIST_QUESTION_ENGINE); the others are the options measured beside them.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "squad_v2_part1.json"


def _ort(path: str) -> Callable[[str], np.ndarray]:
    import onnxruntime as ort

    from taxonomist.embed.encoders import _sentence_transformer

    tokenizer = _sentence_transformer().tokenizer
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def encode(text: str) -> np.ndarray:
        x = tokenizer([text], return_tensors="np", truncation=True, max_length=128)
        feeds = {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"]}
        return np.asarray(session.run(None, feeds)[0][0], dtype=np.float32)

    return encode


def alternatives(tmp: str) -> dict[str, Callable[[str], np.ndarray]]:
    """The options not shipped: ONNX Runtime fp32, ONNX Runtime int8 with one scale per
    tensor, torch's dynamic int8 quantisation of the Linear layers (traced)."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from taxonomist.embed.encoders import _mean_pooled, _sentence_transformer

    model = _sentence_transformer()
    x = model.tokenizer(["What is a question?"], return_tensors="pt")
    args = (x["input_ids"], x["attention_mask"])
    fp32, int8 = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8-tensor.onnx")
    axes = {"input_ids": {0: "n", 1: "t"}, "attention_mask": {0: "n", 1: "t"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _mean_pooled(model[0].auto_model),
            args,
            fp32,
            input_names=list(axes),
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
        quantize_dynamic(
            fp32,
            int8,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        quantized = torch.ao.quantization.quantize_dynamic(
            _mean_pooled(model[0].auto_model), {torch.nn.Linear}, dtype=torch.qint8
        )
        traced = torch.jit.freeze(torch.jit.trace(quantized, args, strict=False).eval())

    def torch_int8(text: str) -> np.ndarray:
        t = model.tokenizer([text], return_tensors="pt", truncation=True, max_length=128)
        with torch.inference_mode():
            return traced(t["input_ids"], t["attention_mask"])[0].numpy()

    return {
        "ONNX Runtime fp32": _ort(fp32),
        "ONNX Runtime int8, per tensor": _ort(int8),
        "torch dynamic int8 (traced)": torch_int8,
    }


def main() -> None:
    import torch

    from taxonomist.embed.encoders import get_encoder, one_text_encoder
    from taxonomist.retrieval import load_qa

    questions = load_qa(SQUAD).questions["question"].tolist()
    rng = np.random.default_rng(0)
    sample = [questions[i] for i in rng.choice(len(questions), 300, replace=False)]
    reference = get_encoder("minilm").encode(sample)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        engines = {
            "torchscript (before)": one_text_encoder("torchscript"),
            "onnx-int8, per channel (default)": one_text_encoder("onnx-int8"),
            **alternatives(tmp),
        }
        for text in sample[:20]:
            for fn in engines.values():
                fn(text)
        ms: dict[str, list[float]] = {name: [] for name in engines}
        vectors: dict[str, list[np.ndarray]] = {name: [] for name in engines}
        for text in sample:
            for name, fn in engines.items():
                start = time.perf_counter()
                vectors[name].append(fn(text))
                ms[name].append((time.perf_counter() - start) * 1000)
    print("| engine | p50 ms | p99 ms | cosine min | cosine mean |\n|---|---|---|---|---|")
    for name in engines:
        v = np.stack(vectors[name])
        cosine = (v * reference).sum(1) / np.linalg.norm(v, axis=1)
        print(
            f"| {name} | {np.percentile(ms[name], 50):.1f} | {np.percentile(ms[name], 99):.1f} "
            f"| {cosine.min():.4f} | {cosine.mean():.4f} |"
        )


if __name__ == "__main__":
    main()
