"""Checkpoint files: one file per rank per saved epoch, and a manifest that makes a set complete.

Layout: ``DIR/epoch-000010/rank-00001.pt`` holds rank 1's model, optimiser, RNG states and the strategy's
own state (e.g. stale halo buffers). ``DIR/epoch-000010/manifest.json`` lists every rank's file with its
size and sha256; rank 0 writes it only after every rank reported its file written, so a set without a
manifest (a rank died mid-save, the disk filled) is never resumed, and a file that no longer matches its
manifest (truncated, corrupted) is detected before it is loaded. ``DIR/run.json`` holds the token of the
run that owns the directory (an elastic restart resumes only its own run's sets). Every file is written to
a temporary name and renamed. Rank files hold tensors and plain containers only and load with
``torch.load(..., weights_only=True)``. The collective protocol is in :mod:`distgnn.checkpoint.sets`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from distgnn.errors import DistGNNError

FORMAT, VERSION = "distgnn-checkpoint", 1
MANIFEST = "manifest.json"
RUN_FILE = "run.json"
DEFAULT_KEEP = 2  # complete checkpoints kept on disk (--keep-checkpoints)


def epoch_dir(root: str | os.PathLike, epoch: int) -> Path:
    return Path(root) / f"epoch-{epoch:06d}"


def rank_file(root: str | os.PathLike, epoch: int, rank: int) -> Path:
    return epoch_dir(root, epoch) / f"rank-{rank:05d}.pt"


def atomic_write_bytes(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``; never leaves a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class FileRecord:
    """What the manifest keeps of one rank file."""

    size: int
    sha256: str


class _HashingWriter:
    """A binary file that hashes what ``torch.save`` writes through it (no second read of the file)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.hash, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(memoryview(data).cast("B"))
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def write_file(path: Path, state: dict) -> FileRecord:
    """``torch.save(state)`` to ``path`` atomically and durably (fsync before the rename)."""
    record: list[FileRecord] = []

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            w = _HashingWriter(f)
            torch.save(state, w)
            f.flush()
            os.fsync(f.fileno())
        record.append(FileRecord(w.size, w.hash.hexdigest()))

    atomic_write_bytes(path, write)
    return record[0]


def save_rank_state(root: str | os.PathLike, epoch: int, rank: int, state: dict) -> FileRecord:
    """Write this rank's state for ``epoch`` (every rank; then rank 0 calls :func:`write_manifest`)."""
    return write_file(rank_file(root, epoch, rank), state)


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1) + "\n"))


def write_manifest(root: str | os.PathLike, epoch: int, records: list[FileRecord], run: str | None) -> None:
    """Rank 0, once every rank's file is written: the set for ``epoch`` becomes complete."""
    root = Path(root)
    missing = [r for r in range(len(records)) if not rank_file(root, epoch, r).exists()]
    if missing:
        raise DistGNNError(f"checkpoint for epoch {epoch} is missing rank files {missing}")
    files = {rank_file(root, epoch, r).name: vars(rec) for r, rec in enumerate(records)}
    manifest = {
        "format": FORMAT, "version": VERSION, "epoch": epoch, "world_size": len(records), "run": run,
        "files": files,
    }  # fmt: skip
    _write_json(epoch_dir(root, epoch) / MANIFEST, manifest)


def read_manifest(root: str | os.PathLike, epoch: int) -> dict:
    """The manifest of ``epoch``'s set; DistGNNError naming the file when it is missing or unreadable."""
    path = epoch_dir(root, epoch) / MANIFEST
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} manifest")
        int(meta["epoch"]), int(meta["world_size"]), dict(meta["files"])
        return meta
    except FileNotFoundError:
        raise DistGNNError(f"checkpoint manifest {path} is missing") from None
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as err:
        raise DistGNNError(f"checkpoint manifest {path} is unreadable: {err}") from None


def saved_epochs(root: str | os.PathLike) -> list[int]:
    """Epochs with a set directory (complete or not), newest first."""
    out = []
    for p in Path(root).glob("epoch-*"):
        if p.is_dir() and p.name[6:].isdigit():
            out.append(int(p.name[6:]))
    return sorted(out, reverse=True)


def complete_epochs(root: str | os.PathLike) -> list[int]:
    """Epochs whose set has a manifest file (not yet verified), newest first."""
    return [e for e in saved_epochs(root) if (epoch_dir(root, e) / MANIFEST).exists()]


def latest(root: str | os.PathLike) -> tuple[int, int] | None:
    """(epoch, world_size) of the newest set with a readable manifest, or None when there is none."""
    for epoch in complete_epochs(root):
        try:
            return epoch, int(read_manifest(root, epoch)["world_size"])
        except DistGNNError:
            continue
    return None


def verify_rank_file(root: str | os.PathLike, epoch: int, rank: int, manifest: dict) -> str | None:
    """Why this rank's file of ``epoch`` cannot be trusted (None when it matches the manifest)."""
    path = rank_file(root, epoch, rank)
    want = manifest["files"].get(path.name)
    if want is None:
        return "is not in its manifest"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing"
    if size != want["size"]:
        return f"is truncated or overwritten ({size} bytes, the manifest says {want['size']})"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != want["sha256"]:
        return "is corrupt (its sha256 does not match the manifest)"
    return None


def load_rank_state(root: str | os.PathLike, epoch: int, rank: int) -> dict:
    path = rank_file(root, epoch, rank)
    if not path.exists():
        raise DistGNNError(f"checkpoint file {path} is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # torch's refusal spans lines and suggests weights_only=False
        found = re.search(r"GLOBAL (\S+)|Unsupported operand (\S+)", str(err))
        what = "it" if not found else f"global {found[1]}" if found[1] else f"pickle opcode {found[2]}"
        raise DistGNNError(
            f"cannot load checkpoint {path}: not a file of tensors and plain containers "
            f"(torch.load with weights_only=True refused {what})"
        ) from None
    except Exception as err:  # a truncated or foreign file: one clear line
        raise DistGNNError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from None


def prune(root: str | os.PathLike, current: int, keep: int) -> None:
    """Rank 0, after ``current``'s manifest: keep the newest ``keep`` complete sets up to ``current``
    (0: all), drop incomplete sets and sets newer than ``current`` (an abandoned timeline)."""
    root = Path(root)
    complete = [e for e in complete_epochs(root) if e <= current]
    kept = set(complete if keep == 0 else complete[:keep])
    for epoch in saved_epochs(root):
        if epoch not in kept:
            shutil.rmtree(epoch_dir(root, epoch), ignore_errors=True)


def discard(root: str | os.PathLike, epoch: int) -> None:
    """Remove ``epoch``'s set (rank 0: a failed save's leftovers, or a set about to be rewritten)."""
    shutil.rmtree(epoch_dir(root, epoch), ignore_errors=True)


def run_token(root: str | os.PathLike, *, new: bool) -> str:
    """The token of the run owning ``root``: a new one (written to run.json) or the one recorded there."""
    path = Path(root) / RUN_FILE
    if not new:
        try:
            return str(json.loads(path.read_text())["run"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none recorded (or unreadable): this run starts a new one
    token = uuid.uuid4().hex
    _write_json(path, {"run": token})
    return token


def partition_mismatch(saved: dict | None, current: dict | None) -> str | None:
    """Why a checkpoint trained on partitioning ``saved`` cannot resume on ``current`` (both
    :func:`distgnn.runtime.preflight.partition_identity`); None when they match or either is unknown (a
    checkpoint of an older distgnn, a trainer built without a partition directory). Another partitioning
    of the same graph has the same feature and class counts: without this, it would resume silently with
    every node's parameters and halo state applied to other nodes."""
    if not saved or not current or saved.get("sha256") == current.get("sha256"):
        return None
    return (
        f"the checkpoint was trained on another partitioning: {saved.get('dir')} (content sha256 "
        f"{str(saved.get('sha256'))[:12]}), this job reads {current['dir']} (content sha256 "
        f"{current['sha256'][:12]}); resume on the partitioning it was written on"
    )


def rng_state() -> dict:
    """The RNG states dropout draws from (CPU and, when present, every CUDA device)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`, also on a machine with another number of CUDA devices (or none): the
    devices both machines have get their saved state, the others keep theirs."""
    torch.set_rng_state(state["cpu"])
    saved = state.get("cuda") or []
    if saved and torch.cuda.is_available():
        for device in range(min(len(saved), torch.cuda.device_count())):
            torch.cuda.set_rng_state(saved[device], device)
