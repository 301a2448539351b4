"""Image columns: EfficientNet-Lite0 features, bad images named per row, a zip of table and
images, fusion with the text in training, and prediction from a data: URI."""

from __future__ import annotations

import base64
import io
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxonomist.data.archive import table_in_zip
from taxonomist.data.load import load_table
from taxonomist.embed.image import (
    DIM,
    ImageEmbedder,
    ImageError,
    check_image,
    decode,
    embed_images,
    image_bytes,
)
from taxonomist.errors import DataError, FileFormatError

pytest.importorskip("efficientnet_lite_pytorch")
Image = pytest.importorskip("PIL.Image")


def _png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("skimage")
    from taxonomist.demo.multimodal import make_multimodal_set

    return make_multimodal_set(tmp_path_factory.mktemp("faces"))


def test_every_kind_of_bad_image_has_its_own_message(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(_png())
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "cut.png").write_bytes(_png(size=(300, 300))[:200])
    huge = io.BytesIO()
    Image.new("1", (10_000, 6_000)).save(huge, format="PNG")  # 60 MP, a few KB on disk
    (tmp_path / "huge.png").write_bytes(huge.getvalue())
    (tmp_path.parent / "secret.png").write_bytes(_png())
    assert check_image("ok.png", tmp_path) is None
    for missing in (None, float("nan"), pd.NA, "", b""):  # a missing cell is no problem
        assert check_image(missing, tmp_path) is None
    cases = {
        "notes.png": "not an image",
        "cut.png": "truncated or corrupt PNG",
        "huge.png": "10000x6000 pixels, over the 50 MP limit",
        "../secret.png": "leaves the image folder",
        "/etc/hostname": "leaves the image folder",
        "gone.png": "no file 'gone.png'",
        "data:image/png;base64,@@@": "not valid base64",
        "data:image/png,raw": "must be base64",
    }
    for value, message in cases.items():
        problem = check_image(value, tmp_path)
        assert problem is not None and message in problem, (value, problem)
    assert "expected an image path" in str(check_image(3, tmp_path))


def test_a_data_uri_bytes_and_a_path_give_the_same_pixels(tmp_path: Path) -> None:
    data = _png(size=(500, 250))
    (tmp_path / "a.png").write_bytes(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    pixels = decode(image_bytes("a.png", tmp_path))
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    assert np.array_equal(pixels, decode(image_bytes(uri, None)))
    assert np.array_equal(pixels, decode(image_bytes(data, None)))
    with pytest.raises(ImageError):
        decode(b"GIF89a broken")


def test_features_are_unit_vectors_cached_by_content_and_bad_rows_are_flagged(
    tmp_path: Path,
) -> None:
    red, blue = _png((220, 20, 20)), _png((20, 20, 220))
    (tmp_path / "red.png").write_bytes(red)
    (tmp_path / "red-copy.png").write_bytes(red)
    (tmp_path / "blue.png").write_bytes(blue)
    (tmp_path / "bad.png").write_text("no")
    cache = tmp_path / "cache.db"
    values = ["red.png", "blue.png", "red-copy.png", "bad.png", None]
    feats, usable = embed_images(values, tmp_path, cache)
    assert usable.tolist() == [True, True, True, False, False]
    assert np.allclose(np.linalg.norm(feats[:3], axis=1), 1.0, atol=1e-5)
    assert np.array_equal(feats[0], feats[2]) and not np.allclose(feats[0], feats[1])
    assert not feats[3:].any()
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM embedding").fetchone()[0] == 2  # by content
    again, _ = embed_images(values, tmp_path, cache)
    assert np.array_equal(again, feats)
    frame = pd.DataFrame({"p": values})
    block = ImageEmbedder(root=str(tmp_path), cache_path=str(cache)).fit(frame)
    out = block.transform(frame)
    assert out.shape == (5, DIM + 1) and out[:, -1].tolist() == [0, 0, 0, 1, 1]
    assert block.get_feature_names_out()[-1] == "image0_missing"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_a_zip_of_table_and_images_loads_and_bad_zips_say_why(tmp_path: Path) -> None:
    table = b"title,photo,label\nred thing,img/r.png,a\nblue thing,img/b.png,b\n"
    good = _zip(tmp_path / "good.zip", {"t.csv": table, "img/r.png": _png(), "img/b.png": _png()})
    df = load_table(good)
    assert df["photo"].tolist() == ["img/r.png", "img/b.png"]
    assert (table_in_zip(good).parent / "img" / "r.png").is_file()
    evil = _zip(tmp_path / "evil.zip", {"t.csv": table, "../outside.png": _png()})
    with pytest.raises(FileFormatError, match="a path outside the zip"):
        load_table(evil)
    assert not (tmp_path / "outside.png").exists()
    two = _zip(tmp_path / "two.zip", {"a.csv": table, "b.csv": table})
    with pytest.raises(FileFormatError, match=r"exactly one table.*holds 2"):
        load_table(two)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(FileFormatError, match="not a readable zip"):
        load_table(tmp_path / "broken.zip")


@pytest.mark.slow
def test_text_and_image_beat_text_alone_and_a_data_uri_predicts_like_its_path(
    home: Path, faces: Path
) -> None:
    from taxonomist.models.train import train

    options = {"target": "label", "families": ["linear_svm"], "trials": 2}
    both = train(faces, **options)
    text_only = train(faces, roles={"photo": "ignore"}, **options)
    assert both.metrics["f1_macro"] >= 0.9  # cross-validated
    assert text_only.metrics["f1_macro"] <= 0.65  # the title settles one label of two
    df = pd.read_csv(faces).head(20)
    from_paths = both.model.predict(df)
    uris = df.assign(
        photo=[
            "data:image/png;base64," + base64.b64encode((faces.parent / p).read_bytes()).decode()
            for p in df["photo"]
        ]
    )
    assert list(both.model.predict(uris)) == list(from_paths)
    why = both.model.explain(uris.iloc[0].to_dict())
    assert "photo (the image)" in [f["name"] for f in why["features"]]
    assert np.mean(np.asarray(from_paths) == df["label"].to_numpy()) >= 0.9


@pytest.mark.slow
def test_a_zip_trains_and_a_mostly_unreadable_image_column_is_refused(
    home: Path, faces: Path, tmp_path: Path
) -> None:
    from taxonomist.models.train import train

    folder = faces.parent
    members = {"items.csv": faces.read_bytes()}
    members |= {f"images/{p.name}": p.read_bytes() for p in (folder / "images").iterdir()}
    zipped = _zip(tmp_path / "items.zip", members)
    result = train(zipped, target="label", families=["logreg"], trials=1)
    assert result.metrics["f1_macro"] >= 0.9
    # a table whose paths point elsewhere: refused, naming rows and the fix
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "items.csv").write_bytes(faces.read_bytes())
    with pytest.raises(DataError, match=r"Only 0 of the 200 images.*row \d+: no file.*--images"):
        train(moved / "items.csv", target="label", families=["logreg"], trials=1)
    # a few bad images: trained, the rows named in a warning
    df = pd.read_csv(faces)
    df.loc[[3, 7], "photo"] = ["images/none.png", "../../etc/passwd"]
    df.to_csv(folder / "some-bad.csv", index=False)
    result = train(folder / "some-bad.csv", target="label", families=["logreg"], trials=1)
    warning = next(w for w in result.report.warnings if "images in 'photo'" in w)
    assert "2 of the 200" in warning and "row 3: no file" in warning and "row 7:" in warning
    assert result.metrics["f1_macro"] >= 0.9


def test_the_prediction_log_keeps_an_images_digest_not_its_bytes() -> None:
    from taxonomist.monitor.log import prediction_rows

    uri = "data:image/png;base64," + base64.b64encode(_png()).decode()
    (row,) = prediction_rows(
        model="m",
        version=1,
        records=[{"photo": uri, "upload": _png(), "title": "red"}],
        labels=["a"],
        proba=[[1.0]],
        classes=["a"],
        latency_ms=1.0,
        request_id="r",
        user_id=None,
        source="api",
    )
    assert row["record"]["title"] == "red"
    assert row["record"]["photo"] == f"<image sha1:{_sha1(uri.encode())}, {len(uri)} bytes>"
    assert row["record"]["upload"] == f"<image sha1:{_sha1(_png())}, {len(_png())} bytes>"


def _sha1(data: bytes) -> str:
    import hashlib

    return hashlib.sha1(data).hexdigest()[:16]


@pytest.mark.slow
def test_the_hybrid_network_reads_the_image_features_beside_the_text(
    home: Path, faces: Path
) -> None:
    pytest.importorskip("sentence_transformers")
    from taxonomist.models.train import train

    result = train(faces, target="label", families=["hybrid"], trials=1)
    (member,) = result.model.members
    assert len([c for c in member.estimator.num_columns_ if c.startswith("image:")]) == DIM + 1
    assert result.metrics["f1_macro"] >= 0.85  # the titles alone reach about 0.5
