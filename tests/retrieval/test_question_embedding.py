"""The one-text MiniLM engines (a question asked now) against the batch path's vectors."""

from __future__ import annotations

import numpy as np
import pytest

from taxonomist.errors import InvalidParameterError
from taxonomist.retrieval import load_qa
from tests.conftest import shared


@pytest.fixture(scope="module")
def questions() -> list[str]:
    qs = load_qa(shared("squad/squad_v2_part1.json")).questions["question"]
    return qs.iloc[::60].tolist()  # 102 questions across the part's articles


@pytest.mark.torch
def test_int8_question_vectors_stay_close_to_the_reference(home, questions) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("onnxruntime")
    from taxonomist.embed.encoders import get_encoder, one_text_encoder

    reference = get_encoder("minilm").encode(questions)  # sentence-transformers, fp32 batches
    int8 = np.stack([one_text_encoder("onnx-int8")(q) for q in questions])
    exact = np.stack([one_text_encoder("torchscript")(q) for q in questions])
    assert int8.shape == (len(questions), 384) and int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cosine = (int8 * reference).sum(1)
    # Measured on these questions: min 0.985, mean 0.994 (per-tensor scales: mean 0.97).
    assert cosine.min() > 0.975 and cosine.mean() > 0.99
    assert (exact * reference).sum(1).min() > 0.99999  # TorchScript is the same graph in fp32


@pytest.mark.torch
def test_the_quantised_graph_is_kept_under_the_home(home, questions) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("onnxruntime")
    from taxonomist.embed.encoders import _onnx_int8_encoder, _sentence_transformer

    built = _onnx_int8_encoder(_sentence_transformer())  # exports and quantises into home
    kept = list((home / "cache").glob("minilm-int8-*.onnx"))
    assert len(kept) == 1 and kept[0].stat().st_size > 20e6  # int8: ~23 MB (fp32: 90 MB)
    reopened = _onnx_int8_encoder(_sentence_transformer())  # a second process: reads the file
    assert list((home / "cache").glob("*.onnx")) == kept
    np.testing.assert_array_equal(built(questions[0]), reopened(questions[0]))


@pytest.mark.torch
def test_a_single_question_takes_the_configured_engine(home, monkeypatch, questions) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("onnxruntime")
    from taxonomist.embed.encoders import _question_engine, get_encoder, one_text_encoder

    minilm = get_encoder("minilm")
    assert _question_engine() == "onnx-int8"  # the default when onnxruntime is installed
    asked = minilm.encode_as_asked([questions[0]])[0]
    np.testing.assert_array_equal(asked, one_text_encoder("onnx-int8")(questions[0]))
    # One text through encode() (a record to classify, a batch's last text) stays exact.
    exact = minilm.encode([questions[0]])[0]
    np.testing.assert_array_equal(exact, one_text_encoder("torchscript")(questions[0]))
    assert float(asked @ exact) < 0.99999  # the two paths do differ
    monkeypatch.setenv("TAXONOMIST_QUESTION_ENGINE", "torchscript")
    from taxonomist.config import get_settings

    get_settings.cache_clear()
    assert _question_engine() == "torchscript"
    np.testing.assert_array_equal(minilm.encode_as_asked([questions[0]])[0], exact)
    with pytest.raises(InvalidParameterError, match="Choose one of: onnx-int8, torchscript"):
        one_text_encoder("onnx-fp16")
    monkeypatch.setenv("TAXONOMIST_QUESTION_ENGINE", "fast")
    get_settings.cache_clear()
    from taxonomist.errors import SettingsError

    with pytest.raises(SettingsError, match="TAXONOMIST_QUESTION_ENGINE: Input should be"):
        get_settings()
