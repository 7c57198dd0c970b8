"""Build a model by name: the one place the CLI and the trainer turn a model name into a module."""

from __future__ import annotations

from collections.abc import Callable

from distgnn.errors import DistGNNError
from distgnn.models.deepgcn import DeepGCN
from distgnn.models.gat import GAT
from distgnn.models.gcn import GCN
from distgnn.models.layered import LayeredModel
from distgnn.models.sage import GraphSAGE

MODELS: dict[str, Callable[..., LayeredModel]] = {
    "gcn": GCN,
    "sage": GraphSAGE,
    "gat": GAT,
    "deepgcn": DeepGCN,
}


def build_model(
    name: str,
    in_dim: int,
    hidden: int,
    out_dim: int,
    layers: int = 2,
    dropout: float = 0.5,
    heads: int = 8,
    out_heads: int = 1,
) -> LayeredModel:
    """A fresh model. Every model maps ``(x [owned, in_dim], prop) -> logits [owned, out_dim]``.

    ``heads``/``out_heads`` only apply to GAT (``hidden`` is then the width per head).
    """
    if name not in MODELS:
        raise DistGNNError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    for label, value in (("in_dim", in_dim), ("hidden", hidden), ("out_dim", out_dim), ("layers", layers)):
        if value < 1:
            raise DistGNNError(f"{label} must be >= 1, got {value}")
    if not 0.0 <= dropout < 1.0:
        raise DistGNNError(f"dropout must be in [0, 1), got {dropout}")
    if name == "gat":
        if heads < 1 or out_heads < 1:
            raise DistGNNError(f"GAT needs at least one head, got heads={heads}, out_heads={out_heads}")
        return GAT(in_dim, hidden, out_dim, layers, dropout, heads=heads, out_heads=out_heads)
    return MODELS[name](in_dim, hidden, out_dim, layers, dropout)
