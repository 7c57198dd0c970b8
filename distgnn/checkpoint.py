"""Checkpoints: one file per rank per saved epoch, plus a ``latest.json`` pointer rank 0 writes last.

Layout: ``DIR/epoch-000010/rank-00001.pt`` holds rank 1's model, optimiser, RNG states and the strategy's
own state (e.g. stale halo buffers). Every file is written to a temporary name and renamed, and the
pointer only moves after a barrier, so ``latest.json`` always names a complete set. Files hold tensors
and plain containers only and load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from distgnn.errors import DistGNNError

POINTER = "latest.json"
KEEP = 2  # complete checkpoints kept on disk


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


def save_rank_state(root: str | os.PathLike, epoch: int, rank: int, state: dict) -> Path:
    """Write this rank's state for ``epoch`` (call on every rank, then :func:`commit`)."""
    path = rank_file(root, epoch, rank)
    atomic_write_bytes(path, lambda tmp: torch.save(state, tmp))
    return path


def commit(root: str | os.PathLike, epoch: int, world_size: int) -> None:
    """Rank 0, after a barrier: point ``latest.json`` at ``epoch`` and drop all but the last KEEP."""
    root = Path(root)
    missing = [r for r in range(world_size) if not rank_file(root, epoch, r).exists()]
    if missing:
        raise DistGNNError(f"checkpoint for epoch {epoch} is missing rank files {missing}")
    text = json.dumps({"epoch": epoch, "world_size": world_size})
    atomic_write_bytes(root / POINTER, lambda tmp: Path(tmp).write_text(text))
    saved = sorted(p for p in root.glob("epoch-*") if p.is_dir())
    for old in saved[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)


def latest(root: str | os.PathLike) -> tuple[int, int] | None:
    """(epoch, world_size) of the newest complete checkpoint, or None when there is none."""
    pointer = Path(root) / POINTER
    if not pointer.exists():
        return None
    try:
        meta = json.loads(pointer.read_text())
        return int(meta["epoch"]), int(meta["world_size"])
    except (ValueError, KeyError, TypeError) as err:
        raise DistGNNError(f"checkpoint pointer {pointer} is unreadable: {err}") from None


def load_rank_state(root: str | os.PathLike, epoch: int, rank: int) -> dict:
    path = rank_file(root, epoch, rank)
    if not path.exists():
        raise DistGNNError(f"checkpoint file {path} is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: one clear line
        raise DistGNNError(f"cannot load checkpoint {path}: {type(err).__name__}: {err}") from None


def rng_state() -> dict:
    """The RNG states dropout draws from (CPU and, when present, every CUDA device)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
