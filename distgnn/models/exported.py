"""One trained model in one file: ``distgnn export`` writes it, :func:`load_exported` builds it back.

The file (``torch.save``) is a dict of tensors and plain values only, so it loads with
``torch.load(weights_only=True)``: ``format``, ``version``, ``config`` (the model options with ``in_dim``
and ``out_dim``, as :func:`distgnn.models.build_model` takes them), ``model`` (the ``state_dict``) and
``epoch`` (the checkpoint it came from).
"""

from __future__ import annotations

import os
import pickle

import torch

from distgnn.errors import DistGNNError, first_line
from distgnn.models.layered import LayeredModel
from distgnn.models.registry import build_model

FORMAT, VERSION = "distgnn-model", 1


def read_exported(path: str | os.PathLike) -> dict:
    """The exported file's dict, checked for its format; one clear line for anything else."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DistGNNError(f"no such file: {path}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        first = first_line(err)
        raise DistGNNError(f"cannot load {path}: not a distgnn model file ({first})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise DistGNNError(f"{path} is not a {FORMAT} version {VERSION} file (written by distgnn export)")
    return data


def model_from(data: dict) -> LayeredModel:
    """The model an exported dict describes, with its weights, in eval mode."""
    c = data["config"]
    model = build_model(
        c["name"],
        c["in_dim"],
        c["hidden"],
        c["out_dim"],
        layers=c["layers"],
        dropout=c["dropout"],
        heads=c["heads"],
        alpha=c.get("alpha", 0.1),  # files written before these options: GCNII's defaults
        lam=c.get("lam", 0.5),
        attention_dropout=c.get("attention_dropout", 0.0),
    )
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as err:
        detail = str(err).strip().splitlines()[-1].strip()
        raise DistGNNError(f"the exported weights do not fit {c['name']}: {detail}") from None
    return model.eval()


def load_exported(path: str | os.PathLike) -> LayeredModel:
    """The model ``distgnn export`` wrote to ``path``, built and loaded in this process, in eval mode:
    ``model(x, prop)`` with any :class:`~distgnn.models.Propagation` (e.g. a single process's)."""
    return model_from(read_exported(path))
