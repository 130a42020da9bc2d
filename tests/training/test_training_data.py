"""Reading, locating and downloading CIFAR-10 (training.data), on small files the tests write."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from training import data
from training.data import DatasetError, download, load_cifar10, read_batch, resolve_data_dir

if TYPE_CHECKING:  # fixtures from conftest.py
    from conftest import BatchWriter, FakeCifar


def test_loads_official_layout(fake_cifar: FakeCifar) -> None:
    loaded = load_cifar10(fake_cifar.path)

    assert loaded.x_train.shape == (40, 32, 32, 3) and loaded.x_train.dtype == np.uint8
    assert loaded.x_test.shape == (10, 32, 32, 3) and loaded.x_test.dtype == np.uint8
    np.testing.assert_array_equal(loaded.x_train, fake_cifar.x_train)
    np.testing.assert_array_equal(loaded.y_train, fake_cifar.y_train)
    np.testing.assert_array_equal(loaded.x_test, fake_cifar.x_test)
    np.testing.assert_array_equal(loaded.y_test, fake_cifar.y_test)
    assert loaded.class_names[0] == "airplane" and loaded.class_names[-1] == "truck"
    assert len(loaded.class_names) == 10


def test_channel_planar_rows_become_hwc(tmp_path: Path, write_cifar_batch: BatchWriter) -> None:
    # Build the raw row by hand: 1024 red values, then green, then blue, each row-major.
    red = np.arange(1024, dtype=np.uint16).reshape(32, 32) % 256
    green = np.full((32, 32), 7)
    blue = np.full((32, 32), 200)
    row = np.concatenate([red.ravel(), green.ravel(), blue.ravel()]).astype(np.uint8)
    with (tmp_path / "batch").open("wb") as handle:
        pickle.dump({b"data": row[None, :], b"labels": [3]}, handle, protocol=2)

    images, labels = read_batch(tmp_path / "batch", num_classes=10)

    assert images.shape == (1, 32, 32, 3)
    assert images[0, 0, 1, 0] == 1 and images[0, 1, 0, 0] == 32 % 256  # x then y, row-major
    assert (images[0, :, :, 1] == 7).all() and (images[0, :, :, 2] == 200).all()
    assert labels.tolist() == [3]


def test_quick_reads_only_the_named_training_files(fake_cifar: FakeCifar) -> None:
    (fake_cifar.path / "data_batch_5").unlink()

    loaded = load_cifar10(fake_cifar.path, train_files=("data_batch_1",))

    np.testing.assert_array_equal(loaded.x_train, fake_cifar.x_train[:8])


def test_test_set_only(fake_cifar: FakeCifar) -> None:
    loaded = load_cifar10(fake_cifar.path, train_files=())

    assert loaded.x_train.shape == (0, 32, 32, 3) and loaded.y_train.shape == (0,)
    np.testing.assert_array_equal(loaded.x_test, fake_cifar.x_test)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"directory not found: .*nowhere.*--download"):
        load_cifar10(tmp_path / "nowhere")


def test_missing_batch_files_are_all_named(fake_cifar: FakeCifar) -> None:
    (fake_cifar.path / "data_batch_3").unlink()
    (fake_cifar.path / "batches.meta").unlink()

    with pytest.raises(DatasetError, match=r"incomplete, missing data_batch_3, batches.meta"):
        load_cifar10(fake_cifar.path)


def test_truncated_batch(fake_cifar: FakeCifar) -> None:
    batch = fake_cifar.path / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:5000])

    with pytest.raises(DatasetError, match=r"data_batch_2 is corrupt or truncated.*--download"):
        load_cifar10(fake_cifar.path)


def test_garbage_batch(fake_cifar: FakeCifar) -> None:
    (fake_cifar.path / "test_batch").write_bytes(b"<html>404 not found</html>")

    with pytest.raises(DatasetError, match=r"test_batch is corrupt or truncated"):
        load_cifar10(fake_cifar.path)


def test_pickle_that_would_run_code_is_refused(fake_cifar: FakeCifar) -> None:
    class Exploit:
        def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
            return (print, ("owned",))

    (fake_cifar.path / "data_batch_1").write_bytes(pickle.dumps({b"data": Exploit()}))

    with pytest.raises(DatasetError, match=r"unexpected object builtins.print"):
        load_cifar10(fake_cifar.path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2, 3], r"holds a list, not the official dict"),
        ({b"labels": [1]}, r"has no b'data' entry"),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [1, 2]}, r"uint8 \[N, 3072\]"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [1, 2]}, r"got float32"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, r"2 images but labels"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, r"labels must be .* \[0, 10\)"),
    ],
)
def test_wrong_content(fake_cifar: FakeCifar, content: object, message: str) -> None:
    (fake_cifar.path / "data_batch_4").write_bytes(pickle.dumps(content, protocol=2))

    with pytest.raises(DatasetError, match=message):
        load_cifar10(fake_cifar.path)


# ------------------------------------------------------------------------------------------------
# resolve_data_dir
# ------------------------------------------------------------------------------------------------


def test_resolve_prefers_explicit_then_env_then_fallback(
    tmp_path: Path, make_fake_cifar: Callable[..., FakeCifar]
) -> None:
    explicit, env_dir, fallback = (tmp_path / n for n in ("explicit", "env", "fallback"))
    make_fake_cifar(fallback)
    cache = tmp_path / "cache"
    environ = {data.ENV_VAR: str(env_dir)}

    chosen = resolve_data_dir(explicit, environ=environ, fallback=fallback, download_dir=cache)
    assert chosen == explicit
    assert resolve_data_dir(None, environ=environ, fallback=fallback, download_dir=cache) == env_dir
    assert resolve_data_dir(None, environ={}, fallback=fallback, download_dir=cache) == fallback
    empty_env = {data.ENV_VAR: ""}  # what `make` passes when nothing was found
    assert resolve_data_dir(None, environ=empty_env, fallback=fallback, download_dir=cache) == (
        fallback
    )


def test_resolve_without_data_or_download_explains(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no CIFAR-10 data found.*--download"):
        resolve_data_dir(
            None, environ={}, fallback=tmp_path / "none", download_dir=tmp_path / "cache"
        )


def test_resolve_downloads_only_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[Path] = []
    monkeypatch.setattr(data, "download", lambda dest: fetched.append(dest) or dest)
    cache = tmp_path / "cache"

    chosen = resolve_data_dir(
        None, allow_download=True, environ={}, fallback=tmp_path / "none", download_dir=cache
    )

    assert chosen == cache and fetched == [cache]


# ------------------------------------------------------------------------------------------------
# download (file:// URLs only: tests never touch the network)
# ------------------------------------------------------------------------------------------------


def _archive(path: Path, members: dict[str, bytes]) -> tuple[str, str]:
    """Writes a .tar.gz holding `members`; returns its file:// URL and MD5."""
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path.as_uri(), hashlib.md5(path.read_bytes()).hexdigest()


def _official_members(source: Path) -> dict[str, bytes]:
    return {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in sorted(source.iterdir())}


def test_download_checksum_mismatch_extracts_nothing(tmp_path: Path, fake_cifar: FakeCifar) -> None:
    url, _ = _archive(tmp_path / "fake.tar.gz", _official_members(fake_cifar.path))
    dest = tmp_path / "downloads" / "cifar"

    with pytest.raises(DatasetError, match=r"checksum mismatch .*expected MD5 c58f3010"):
        download(dest, url=url, show_progress=False)

    assert not dest.exists()
    assert list((tmp_path / "downloads").iterdir()) == []  # the temporary work dir is gone too


def test_download_verifies_and_extracts(
    tmp_path: Path, fake_cifar: FakeCifar, capsys: pytest.CaptureFixture[str]
) -> None:
    url, md5 = _archive(tmp_path / "good.tar.gz", _official_members(fake_cifar.path))
    dest = tmp_path / "downloads" / "cifar"

    assert download(dest, url=url, md5=md5) == dest

    np.testing.assert_array_equal(load_cifar10(dest).x_test, fake_cifar.x_test)
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == ["cifar"]
    assert "downloading CIFAR-10 [" in capsys.readouterr().err


@pytest.mark.parametrize(
    "evil", ["../escaped", "/tmp/absolute-escape", "cifar-10-batches-py/../../x"]
)
def test_download_refuses_paths_outside_the_target(
    tmp_path: Path, fake_cifar: FakeCifar, evil: str
) -> None:
    members = {**_official_members(fake_cifar.path), evil: b"boom"}
    url, md5 = _archive(tmp_path / "evil.tar.gz", members)
    dest = tmp_path / "downloads" / "cifar"

    with pytest.raises(DatasetError, match=r"escapes the target directory"):
        download(dest, url=url, md5=md5, show_progress=False)

    assert not dest.exists() and not (tmp_path / "escaped").exists()
    assert not Path("/tmp/absolute-escape").exists()


def test_download_refuses_links(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()

    with pytest.raises(DatasetError, match=r"not a regular file or directory"):
        download(tmp_path / "cifar", url=archive.as_uri(), md5=md5, show_progress=False)


def test_download_unreachable_url(tmp_path: Path) -> None:
    missing = (tmp_path / "missing.tar.gz").as_uri()

    with pytest.raises(DatasetError, match=r"could not download"):
        download(tmp_path / "cifar", url=missing, show_progress=False)
