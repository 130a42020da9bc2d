"""CIFAR-10 in the official python layout: find it, fetch it, read it.

The official archive unpacks to a directory holding `data_batch_1` .. `data_batch_5`, `test_batch`
and `batches.meta`: Python pickles of dicts with bytes keys. A batch has `b"data"` (N x 3072 uint8,
channel-planar: 1024 red, then 1024 green, then 1024 blue values of a 32x32 image, row-major) and
`b"labels"` (N ints); `batches.meta` has `b"label_names"`.

Every problem with the data surfaces as `DatasetError`, whose message says what is wrong and how to
fix it. This module needs only numpy and the standard library, so it fails fast without TensorFlow.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_TOP_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
REQUIRED_FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)
IMAGE_SHAPE = (32, 32, 3)
ENV_VAR = "CIFAR10_DIR"

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FALLBACK = REPO_ROOT.parent / "shared" / "datasets" / ARCHIVE_TOP_DIR

_HINT = f"pass --data-dir, set {ENV_VAR}, or add --download to fetch the official archive"


class DatasetError(Exception):
    """The dataset is missing, incomplete or unreadable; the message says how to fix it."""


@dataclass(frozen=True)
class Cifar10:
    """CIFAR-10 as arrays: uint8 NHWC images, int64 labels, and the class names by label."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    sha256: str = ""
    """Checksum of the files read (names and bytes), recorded with every exported model."""


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only the globals a CIFAR batch needs, so a hostile pickle cannot run code."""

    _ALLOWED: Mapping[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes this way under pickle protocol 2 (re-pickled copies).
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}") from None


def _unpickle(path: Path) -> dict[bytes, Any]:
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 file missing: {path}; {_HINT}")
    try:
        with path.open("rb") as handle:
            content = _BatchUnpickler(handle, encoding="bytes").load()
    except Exception as exc:  # any parse failure means the file is damaged
        raise DatasetError(
            f"CIFAR-10 file {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
            "delete the directory and fetch it again with --download"
        ) from exc
    if not isinstance(content, dict):
        raise DatasetError(
            f"CIFAR-10 file {path} holds a {type(content).__name__}, not the official dict"
        )
    return content


def _field(content: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in content:
        found = ", ".join(sorted(repr(k) for k in content)) or "nothing"
        raise DatasetError(f"CIFAR-10 file {path} has no {key!r} entry (found {found})")
    return content[key]


def read_class_names(data_dir: Path) -> tuple[str, ...]:
    """The class names from `batches.meta`, in label order."""
    path = Path(data_dir) / META_FILE
    names = _field(_unpickle(path), b"label_names", path)
    if not isinstance(names, list | tuple) or not names:
        raise DatasetError(f"CIFAR-10 file {path}: label_names must be a non-empty list")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (uint8 images [N, 32, 32, 3], int64 labels [N])."""
    path = Path(path)
    content = _unpickle(path)
    data = np.asarray(_field(content, b"data", path))
    labels = np.asarray(_field(content, b"labels", path))
    row_size = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row_size:
        raise DatasetError(
            f"CIFAR-10 file {path}: data must be uint8 [N, {row_size}], "
            f"got {data.dtype} {list(data.shape)}"
        )
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DatasetError(
            f"CIFAR-10 file {path}: {data.shape[0]} images but labels of shape {list(labels.shape)}"
        )
    if labels.size and (
        not np.issubdtype(labels.dtype, np.integer)
        or labels.min() < 0
        or labels.max() >= num_classes
    ):
        raise DatasetError(f"CIFAR-10 file {path}: labels must be integers in [0, {num_classes})")
    height, width, channels = IMAGE_SHAPE
    images = data.reshape(-1, channels, height, width).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def load_cifar10(data_dir: Path, *, train_files: tuple[str, ...] = TRAIN_FILES) -> Cifar10:
    """Reads CIFAR-10 from an official-layout directory; raises `DatasetError` on any problem.

    `train_files` lets a quick run read fewer training batches (none: only the test set).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"CIFAR-10 directory not found: {data_dir}; {_HINT}")
    needed = (*train_files, TEST_FILE, META_FILE)
    missing = [name for name in needed if not (data_dir / name).is_file()]
    if missing:
        raise DatasetError(
            f"CIFAR-10 directory {data_dir} is incomplete, missing {', '.join(missing)}; "
            "point at the unpacked 'cifar-10-batches-py' directory or fetch it with --download"
        )
    class_names = read_class_names(data_dir)
    train = [read_batch(data_dir / name, len(class_names)) for name in train_files]
    x_test, y_test = read_batch(data_dir / TEST_FILE, len(class_names))
    no_images = np.empty((0, *IMAGE_SHAPE), np.uint8)
    return Cifar10(
        x_train=np.concatenate([no_images, *(x for x, _ in train)]),
        y_train=np.concatenate([np.empty(0, np.int64), *(y for _, y in train)]),
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        sha256=files_checksum(data_dir, needed),
    )


def files_checksum(data_dir: Path, names: tuple[str, ...]) -> str:
    """SHA-256 over the named files, in order, each preceded by its name."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        with (Path(data_dir) / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def is_complete(data_dir: Path) -> bool:
    """Whether every official file is present (not whether they parse)."""
    return all((Path(data_dir) / name).is_file() for name in REQUIRED_FILES)


# ---------------------------------------------------------------------------------------------
# Locating
# ---------------------------------------------------------------------------------------------


def default_download_dir() -> Path:
    """Where `--download` puts the data when no directory was named: the user's cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "imgclf" / ARCHIVE_TOP_DIR


def resolve_data_dir(
    explicit: Path | None = None,
    *,
    allow_download: bool = False,
    environ: Mapping[str, str] | None = None,
    fallback: Path = SHARED_FALLBACK,
    download_dir: Path | None = None,
) -> Path:
    """Chooses the CIFAR-10 directory, downloading into it only when `allow_download`.

    Order: `explicit`, then `$CIFAR10_DIR`, then `fallback` (the shared copy next to the repo)
    if it is complete, then `download_dir` (the user's cache) if complete. A named directory that
    is incomplete is downloaded into when allowed, otherwise returned as is so that loading it
    explains what is missing. With nothing found and downloads not allowed, raises `DatasetError`.
    """
    env = os.environ if environ is None else environ
    named = explicit if explicit is not None else (Path(env[ENV_VAR]) if env.get(ENV_VAR) else None)
    if named is not None:
        if allow_download and not is_complete(named):
            download(named)
        return Path(named)
    cache = download_dir or default_download_dir()
    for candidate in (fallback, cache):
        if is_complete(candidate):
            return candidate
    if allow_download:
        download(cache)
        return cache
    raise DatasetError(
        f"no CIFAR-10 data found (looked at ${ENV_VAR}, {fallback}, {cache}); {_HINT}"
    )


# ---------------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------------


def _progress(done: int, total: int | None, stream: IO[str]) -> None:
    mib = 1024 * 1024
    if total:
        filled = int(30 * done / total)
        bar = "#" * filled + "." * (30 - filled)
        text = f"\rdownloading CIFAR-10 [{bar}] {done / mib:6.1f}/{total / mib:.1f} MiB"
    else:
        text = f"\rdownloading CIFAR-10 {done / mib:6.1f} MiB"
    stream.write(text)
    stream.flush()


def _fetch(url: str, target: Path, *, show_progress: bool, timeout: float) -> str:
    """Streams `url` into `target`; returns the hex MD5 of what was written."""
    digest = hashlib.md5(usedforsecurity=False)
    done = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if show_progress:
                    _progress(done, total, sys.stderr)
    except OSError as exc:
        raise DatasetError(f"could not download {url}: {exc}") from exc
    finally:
        if show_progress and done:
            sys.stderr.write("\n")
    return digest.hexdigest()


def _member_target(member: tarfile.TarInfo) -> PurePosixPath | None:
    """The member's path below the archive's top directory, or None for the top directory."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise DatasetError(f"archive member {member.name!r} escapes the target directory")
    if not (member.isfile() or member.isdir()):
        raise DatasetError(f"archive member {member.name!r} is not a regular file or directory")
    parts = path.parts[1:] if path.parts[0] == ARCHIVE_TOP_DIR else path.parts
    return PurePosixPath(*parts) if parts else None


def _extract(archive: Path, dest: Path) -> None:
    """Unpacks the archive's files into `dest`, refusing links and paths that leave it."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                relative = _member_target(member)
                if relative is None:
                    continue
                target = dest.joinpath(*relative.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise DatasetError(f"archive member {member.name!r} cannot be read")
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetError(f"could not unpack {archive}: {exc}") from exc


def download(
    dest_dir: Path,
    *,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
    show_progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetches the official archive, checks its MD5 and unpacks the batch files into `dest_dir`.

    The files appear in `dest_dir` all at once (unpacked next to it, then renamed), and nothing is
    unpacked when the checksum differs. An existing complete `dest_dir` is left untouched.
    """
    dest = Path(dest_dir)
    if is_complete(dest):
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise DatasetError(f"{dest} exists and is not empty; remove it or choose another directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cifar10-", dir=dest.parent) as work:
        archive = Path(work) / "cifar-10-python.tar.gz"
        actual = _fetch(url, archive, show_progress=show_progress, timeout=timeout)
        if actual != md5:
            raise DatasetError(
                f"checksum mismatch for {url}: expected MD5 {md5}, got {actual}; "
                "the download is damaged or not the official archive, try again"
            )
        unpacked = Path(work) / "unpacked"
        unpacked.mkdir()
        _extract(archive, unpacked)
        if not is_complete(unpacked):
            raise DatasetError(f"{url} does not contain the official CIFAR-10 batch files")
        if dest.exists():
            dest.rmdir()
        unpacked.rename(dest)
    return dest


def split_validation(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Holds out `count` training images (a seeded random draw) for validation.

    Returns (train_images, train_labels, validation_images, validation_labels). The test set is
    never touched: it is for the final evaluation only.
    """
    if count <= 0:
        return images, labels, images[:0], labels[:0]
    if count >= len(images):
        raise ValueError(f"cannot hold out {count} of {len(images)} training images")
    order = np.random.default_rng(seed).permutation(len(images))
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    return images[kept], labels[kept], images[held], labels[held]
