"""Gather one model from a checkpoint set: every rank's file holds the whole model, but a pipeline stage
updates only its layers, so each parameter comes from a rank that owns it (``owned`` in the rank file)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from distgnn.checkpoint import files as ckpt
from distgnn.errors import DistGNNError
from distgnn.models.exported import FORMAT, VERSION


def gather_model(root: str | os.PathLike, epoch: int | None = None) -> dict:
    """The exported-model dict of ``epoch``'s checkpoint set in ``root`` (default: the newest complete
    one), each file checked against the set's manifest."""
    if epoch is None:
        found = ckpt.latest(root)
        if found is None:
            raise DistGNNError(f"{root} holds no complete checkpoint")
        epoch = found[0]
    manifest = ckpt.read_manifest(root, epoch)
    model: dict[str, torch.Tensor] = {}
    config = None
    for rank in range(int(manifest["world_size"])):
        problem = ckpt.verify_rank_file(root, epoch, rank, manifest)
        if problem:
            raise DistGNNError(f"checkpoint file {ckpt.rank_file(root, epoch, rank)} {problem}")
        state = ckpt.load_rank_state(root, epoch, rank)
        if "owned" not in state or "model_config" not in state:
            raise DistGNNError(
                f"{ckpt.rank_file(root, epoch, rank)} was written by an older distgnn that did not record "
                "which rank owns which parameters: resume it for one epoch with this version to export it"
            )
        config = state["model_config"]
        for name in state["owned"]:
            model.setdefault(name, state["model"][name])
        every = set(state["model"])
    missing = sorted(every - set(model))
    if missing:
        raise DistGNNError(f"no rank of {root} epoch {epoch} owns {', '.join(missing)}")
    return {"format": FORMAT, "version": VERSION, "config": config, "model": model, "epoch": epoch}


def save_exported(path: str | os.PathLike, data: dict) -> None:
    """Write the exported dict atomically (a temporary file renamed into place)."""
    ckpt.atomic_write_bytes(Path(path), lambda tmp: torch.save(data, tmp))
