"""The on-disk partition directory: ``meta.json`` plus one ``.npy`` file per Part array, per part.

Layout::

    DIR/meta.json              format "distgnn-partition", version, sizes, method, quality, sha256 per file
    DIR/part-{p}/{array}.npy   one file per array field of Part (see ARRAYS)

Arrays load memory-mapped with ``allow_pickle=False``. Writes go to a hidden temporary directory beside
the target that is renamed into place only once complete, so a failure or Ctrl-C never leaves a
half-written partition. Checksums are computed from the bytes as they are written (no re-read).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from distgnn import jsonio
from distgnn.errors import DistGNNError

from .part import Part

FORMAT_NAME = "distgnn-partition"
FORMAT_VERSION = 1
META_FILE = "meta.json"

# Every array field of Part with its on-disk dtype; the scalar fields live in meta.json.
ARRAYS: dict[str, np.dtype] = {
    "indptr": np.dtype(np.int64),
    "indices": np.dtype(np.int64),
    "halo_gids": np.dtype(np.int64),
    "halo_offsets": np.dtype(np.int64),
    "send_idx": np.dtype(np.int64),
    "send_offsets": np.dtype(np.int64),
    "in_degree": np.dtype(np.int64),
    "out_degree": np.dtype(np.int64),
    "x": np.dtype(np.float32),
    "y": np.dtype(np.int64),
    "train_mask": np.dtype(np.bool_),
    "val_mask": np.dtype(np.bool_),
    "test_mask": np.dtype(np.bool_),
    "orig_ids": np.dtype(np.int64),
}

_READ_CHUNK = 1 << 24


def sibling_temp(target: Path, kind: str) -> Path:
    """A new directory ``.{name}.{kind}-{pid}-{random}`` beside ``target``. The ones of this kind a killed
    run left behind (their process gone) are removed first."""
    parent = target.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f".{target.name}.{kind}-*"):
        pid = stale.name.rsplit("-", 2)[-2]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    path = parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def scratch_beside(target: str | os.PathLike) -> Iterator[Path]:
    """A scratch directory beside ``target`` (``sibling_temp``), removed at the end, failure or not."""
    path = sibling_temp(Path(target), "scratch")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def part_dirname(part_id: int) -> str:
    return f"part-{part_id}"


class _HashingFile:
    """A write-only file wrapper that feeds every byte written into a sha256."""

    def __init__(self, f) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self._f.write(data)


class PartitionWriter:
    """Builds a partition directory atomically. Use as a context manager and call ``commit(meta)``.

    Leaving the ``with`` block without a commit (an exception, Ctrl-C) deletes the temporary directory.
    """

    def __init__(self, out_dir: str | os.PathLike, *, overwrite: bool = False) -> None:
        self.target = Path(out_dir)
        self.overwrite = overwrite
        self.checksums: dict[str, str] = {}
        self.tmp: Path | None = None
        check_target(self.target, overwrite)

    def __enter__(self) -> PartitionWriter:
        self.tmp = sibling_temp(self.target, "partial")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None

    def write_array(self, part_id: int, name: str, array: np.ndarray) -> None:
        """Write one Part array as ``part-{p}/{name}.npy`` and record its sha256."""
        if self.tmp is None:
            raise RuntimeError("PartitionWriter used outside its with-block")
        want = ARRAYS[name]
        array = np.ascontiguousarray(array, dtype=want)
        rel = f"{part_dirname(part_id)}/{name}.npy"
        path = self.tmp / rel
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as f:
            hashing = _HashingFile(f)
            np.lib.format.write_array(hashing, array, allow_pickle=False)
        self.checksums[rel] = hashing.sha256.hexdigest()

    def commit(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Write meta.json (with the checksums) and move the directory into place."""
        if self.tmp is None:
            raise RuntimeError("PartitionWriter used outside its with-block")
        meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **meta, "checksums": dict(self.checksums)}
        with open(self.tmp / META_FILE, "w") as f:
            f.write(jsonio.dumps(meta, indent=1))
            f.write("\n")
        check_target(self.target, self.overwrite)  # it may have appeared while we worked
        trash = None
        if self.target.exists():
            trash = self.tmp.with_name(self.tmp.name + "-old")
            os.rename(self.target, trash)
        try:
            os.rename(self.tmp, self.target)
        except BaseException:
            if trash is not None:
                os.rename(trash, self.target)  # put the old partition back
            raise
        self.tmp = None
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return meta


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a target that is a file, or a non-empty directory unless overwriting was asked for."""
    if not target.exists():
        return
    if not target.is_dir():
        raise DistGNNError(f"output path {target} exists and is not a directory")
    if any(target.iterdir()) and not overwrite:
        raise DistGNNError(
            f"output directory {target} already exists and is not empty (pass --force to replace it)"
        )


def write_partition(
    out_dir: str | os.PathLike, parts: Iterable[Part], meta: dict[str, Any], *, overwrite: bool = False
) -> dict[str, Any]:
    """Write already-built Parts and ``meta`` atomically; returns the meta.json content written."""
    with PartitionWriter(out_dir, overwrite=overwrite) as writer:
        for part in parts:
            for name in ARRAYS:
                writer.write_array(part.part_id, name, getattr(part, name))
        return writer.commit(meta)


def load_meta(part_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``meta.json``: right format name and a version this code reads."""
    root = Path(part_dir)
    if not root.is_dir():
        raise DistGNNError(f"partition directory {root} does not exist")
    path = root / META_FILE
    if not path.is_file():
        raise DistGNNError(f"{root} is not a distgnn partition directory: {META_FILE} is missing")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DistGNNError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DistGNNError(f"{path} is not a distgnn partition (format field is not {FORMAT_NAME!r})")
    version = meta.get("version")
    if version != FORMAT_VERSION:
        raise DistGNNError(
            f"partition format version {version} is not supported "
            f"(this distgnn reads version {FORMAT_VERSION})"
        )
    check_meta(meta, path)
    return meta


def check_meta(meta: dict[str, Any], path: Path) -> None:
    """Refuse a meta.json whose sizes are not sane or whose file list names anything but this format's
    ``part-<p>/<array>.npy`` files: metadata can never point a reader outside its directory."""
    num_parts = meta.get("num_parts")
    if not isinstance(num_parts, int) or isinstance(num_parts, bool) or num_parts < 1:
        raise DistGNNError(f"{path}: num_parts must be a positive integer, got {num_parts!r}")
    ranges = meta.get("node_ranges")
    if not isinstance(ranges, list) or len(ranges) != num_parts:
        raise DistGNNError(f"{path}: node_ranges must list one [start, end) per part")
    end = 0
    for p, r in enumerate(ranges):
        pair = isinstance(r, list) and len(r) == 2 and all(type(v) is int for v in r)
        if not (pair and r[0] == end <= r[1]):
            raise DistGNNError(f"{path}: node_ranges[{p}] is {r!r}; parts must own contiguous ranges from 0")
        end = r[1]
    classes = meta.get("num_classes")
    if type(classes) is not int or classes < 1:
        raise DistGNNError(f"{path}: num_classes must be a positive integer, got {classes!r}")
    checksums = meta.get("checksums")
    if not isinstance(checksums, dict):
        raise DistGNNError(f"{path}: checksums must be an object mapping file names to sha256 digests")
    allowed = {f"{part_dirname(p)}/{name}.npy" for p in range(num_parts) for name in ARRAYS}
    for rel in checksums:
        if rel not in allowed:
            where = "outside the partition directory" if ".." in rel or rel.startswith("/") else "unknown"
            raise DistGNNError(f"{path} names a file {where}: {rel!r} (expected part-<p>/<array>.npy)")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_array(
    root: Path, meta: dict[str, Any], part_id: int, name: str, *, mmap: bool, verify: bool
) -> np.ndarray:
    """Load one array file, verifying its checksum and dtype."""
    rel = f"{part_dirname(part_id)}/{name}.npy"
    path = root / rel
    if not path.is_file():
        raise DistGNNError(f"partition file {path} is missing")
    if verify:
        expected = meta.get("checksums", {}).get(rel)
        if expected is None:
            raise DistGNNError(f"{root / META_FILE} has no checksum for {rel}")
        if sha256_file(path) != expected:
            raise DistGNNError(f"checksum mismatch for {path}: the file is corrupt or was modified")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        raise DistGNNError(f"cannot read {path}: {err}") from err
    if array.dtype != ARRAYS[name]:
        raise DistGNNError(f"{path} has dtype {array.dtype}, expected {ARRAYS[name]}")
    return array


def load_part(part_dir: str | os.PathLike, part_id: int, *, mmap: bool = True, verify: bool = True) -> Part:
    """Load the rank-local Part ``part_id`` (memory-mapped, read-only, by default)."""
    root = Path(part_dir)
    meta = load_meta(root)
    num_parts = int(meta["num_parts"])
    if not 0 <= part_id < num_parts:
        raise DistGNNError(f"part {part_id} does not exist: {root} has parts 0..{num_parts - 1}")
    arrays = {name: load_array(root, meta, part_id, name, mmap=mmap, verify=verify) for name in ARRAYS}
    start, end = (int(v) for v in meta["node_ranges"][part_id])
    part = Part(
        part_id=part_id,
        num_parts=num_parts,
        node_range=(start, end),
        num_classes=int(meta["num_classes"]),
        **arrays,
    )
    check_shapes(part, path=root / part_dirname(part_id))
    check_values(part, path=root / part_dirname(part_id))
    return part


def check_values(part: Part, *, path: Path) -> None:
    """Catch IDs out of range and non-finite features (one pass over each array; a file that passes its
    checksum can still come from a buggy writer or have been re-checksummed by hand)."""
    n, h, p = part.n_owned, part.n_halo, part.num_parts

    def within(name: str, lo: int, hi: int) -> None:
        a = getattr(part, name)
        if a.size and (int(a.min()) < lo or int(a.max()) >= hi):
            raise DistGNNError(
                f"{path}/{name}.npy has values outside [{lo}, {hi}): {int(a.min())}..{int(a.max())}"
            )

    within("indices", 0, n + h)
    within("send_idx", 0, n)
    within("y", -1, part.num_classes)
    for name in ("indptr", "halo_offsets", "send_offsets"):
        a = getattr(part, name)
        if a.size and (int(a[0]) != 0 or bool((np.diff(a) < 0).any())):
            raise DistGNNError(f"{path}/{name}.npy must start at 0 and never decrease")
    if int(part.indptr[-1]) != part.indices.shape[0] or int(part.halo_offsets[-1]) != h:
        raise DistGNNError(f"{path}: indptr/halo_offsets do not match indices/halo_gids")
    if int(part.send_offsets[-1]) != part.send_idx.shape[0] or p != part.halo_offsets.shape[0] - 1:
        raise DistGNNError(f"{path}: send_offsets do not match send_idx")
    rows = max(1, (1 << 22) // max(1, part.x.shape[1]))  # row blocks: no N x F temporary
    if not all(np.isfinite(part.x[i : i + rows]).all() for i in range(0, part.x.shape[0], rows)):
        raise DistGNNError(f"{path}/x.npy has non-finite features (NaN or Inf)")


def check_shapes(part: Part, *, path: Path) -> None:
    """Catch a part whose arrays disagree with each other (cheap: shapes only)."""
    n, h, p = part.n_owned, part.n_halo, part.num_parts
    expect = {
        "indptr": (n + 1,),
        "halo_offsets": (p + 1,),
        "send_offsets": (p + 1,),
        "in_degree": (n + h,),
        "out_degree": (n + h,),
        "y": (n,),
        "train_mask": (n,),
        "val_mask": (n,),
        "test_mask": (n,),
        "orig_ids": (n,),
    }
    for name, shape in expect.items():
        got = getattr(part, name).shape
        if got != shape:
            raise DistGNNError(f"{path}/{name}.npy has shape {got}, expected {shape}")
    if part.x.ndim != 2 or part.x.shape[0] != n:
        raise DistGNNError(f"{path}/x.npy has shape {part.x.shape}, expected ({n}, F)")
