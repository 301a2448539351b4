"""Stored files in an S3 bucket (SeaweedFS on loopback): what one machine stores, another
reads from the bucket; a deletion removes both; a missing object and an unreachable server
say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxonomist.config import Settings
from taxonomist.errors import NotFoundError, ServiceUnavailableError
from taxonomist.store.files import FileStore
from tests.conftest import S3_KEYS, free_port, require_dvc_tools, serving_s3


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    require_dvc_tools(s3=True)
    with serving_s3("files-test") as (url, client):
        for k, v in (S3_KEYS | {"AWS_ENDPOINT_URL": url}).items():
            monkeypatch.setenv(k, v)
        yield client


def test_a_file_stored_on_one_machine_is_read_on_another(bucket, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "api", artifacts_uri="s3://files-test/team")
    here = FileStore(settings, tmp_path / "api" / "datasets", "datasets")
    there = FileStore(settings, tmp_path / "worker" / "datasets", "datasets")
    here.folder.mkdir(parents=True)
    local = here.folder / "abc.csv"
    local.write_text("title,label\nfoo,a\n")
    location = here.publish(local)
    assert location == "s3://files-test/team/datasets/abc.csv"
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="files-test")["Contents"]]
    assert keys == ["team/datasets/abc.csv"]
    copy = there.local(location)  # downloaded once, under the same name
    assert copy == tmp_path / "worker" / "datasets" / "abc.csv"
    assert copy.read_text() == local.read_text() and not list(copy.parent.glob("*.part"))
    assert there.local(location) == copy
    there.delete(location)
    assert not copy.exists() and "Contents" not in bucket.list_objects_v2(Bucket="files-test")
    with pytest.raises(NotFoundError, match="gone from the bucket"):
        here.local("s3://files-test/team/datasets/never.csv")


def test_an_unreachable_bucket_is_a_503_that_says_what_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in (S3_KEYS | {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}).items():
        monkeypatch.setenv(k, v)
    settings = Settings(home=tmp_path, artifacts_uri="s3://nowhere")
    files = FileStore(settings, tmp_path / "datasets", "datasets")
    files.folder.mkdir()
    (files.folder / "x.csv").write_text("a\n1\n")
    with pytest.raises(ServiceUnavailableError, match="AWS_ENDPOINT_URL"):
        files.publish(files.folder / "x.csv")
    with pytest.raises(ServiceUnavailableError, match="failed to read"):
        files.local("s3://nowhere/datasets/x2.csv")


def test_without_a_bucket_the_location_is_the_path(tmp_path: Path) -> None:
    files = FileStore(Settings(home=tmp_path), tmp_path / "datasets", "datasets")
    files.folder.mkdir()
    (files.folder / "x.csv").write_text("a\n1\n")
    location = files.publish(files.folder / "x.csv")
    assert location == str(files.folder / "x.csv") and files.local(location).exists()
    files.delete(location)
    with pytest.raises(NotFoundError, match="gone"):
        files.local(location)
