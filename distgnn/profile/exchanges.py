"""What a model exchanges per layer, learned from the model itself (no graph, no process group).

The model is built exactly as the trainer builds it and run once on two dummy rows through a recording
:class:`~distgnn.models.propagation.Propagation`. Each aggregation call reports the width of the rows it
would send and whether they require grad: only then does the backward pass send halo gradients back
(a first layer that aggregates raw features sends rows forward but no gradients). The widths are
checked against ``model.exchange_widths()``, the model's own statement of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from distgnn.config import MODELS
from distgnn.errors import DistGNNError, first_line
from distgnn.kernels.select import ENV_VAR
from distgnn.models.registry import build_model


@dataclass(frozen=True)
class LayerExchange:
    """One aggregation call site: ``key`` (layer id), row ``width`` in elements, gradient sent back?"""

    key: int
    width: int
    backward: bool


@dataclass(frozen=True)
class ModelSpec:
    """The model options that decide what is exchanged (those of ``distgnn train``)."""

    model: str
    layers: int
    hidden: int
    heads: int = 8


class _Recorder:
    """A Propagation that aggregates nothing (identity) and records what each call would exchange."""

    def __init__(self, rows: int) -> None:
        self.num_nodes = rows
        self.calls: list[LayerExchange] = []

    def mask_key(self, site: int) -> None:
        """No keyed dropout masks (dropout is 0 here): torch's RNG, which the pass never draws from."""
        return None

    def _record(self, h: Tensor, key: int) -> None:
        self.calls.append(LayerExchange(int(key), math.prod(h.shape[1:]), bool(h.requires_grad)))

    def aggregate(self, h: Tensor, *, key: int, norm: str) -> Tensor:
        self._record(h, key)
        return h

    def aggregate_linear(self, h: Tensor, weight: Tensor, *, key: int, norm: str) -> Tensor:
        return self.aggregate(h, key=key, norm=norm) @ weight

    def attend(
        self,
        h: Tensor,
        a_src: Tensor,
        a_dst: Tensor,
        *,
        key: int,
        negative_slope: float,
        dropout: float = 0.0,
    ) -> Tensor:
        # Attention dropout moves no bytes. The graph strategy sends h and a_src as one message:
        # [rows, heads * D + heads].
        self._record(torch.cat([h.flatten(1), a_src], dim=1), key)
        return h


def layer_exchanges(spec: ModelSpec, in_dim: int, num_classes: int) -> list[LayerExchange]:
    """Per aggregation call of one training forward pass, in call order."""
    with torch.random.fork_rng(devices=[]), _reference_kernels():
        model = build_model(
            spec.model, in_dim, spec.hidden, num_classes, layers=spec.layers, dropout=0.0, heads=spec.heads
        )
        rec = _Recorder(2)
        model.train()
        try:
            model(torch.ones(2, in_dim), rec)
        except Exception as err:
            if spec.model in MODELS:
                raise  # a bug of ours: its traceback is the report
            first = first_line(err)
            why = f"{type(err).__name__}: {first}"
            raise DistGNNError(
                f"--model {spec.model} breaks the model contract (docs/models.md): {why}"
            ) from None
    widths = [c.width for c in rec.calls]
    if widths != list(model.exchange_widths()):
        raise DistGNNError(
            f"{spec.model}: recorded exchange widths {widths} disagree with the model's "
            f"exchange_widths() {model.exchange_widths()}"
        )
    return rec.calls


@contextmanager
def _reference_kernels() -> Iterator[None]:
    """Run the dummy pass on plain-torch kernels: predicting must not build the C++ extension."""
    saved = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "reference"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved
