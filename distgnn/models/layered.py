"""What every model offers a strategy (and the trainer and the profiler): the :class:`LayeredModel` contract.

Layers have *global* ids ``0 .. num_layers - 1``; ``forward_range(h, prop, start, stop)`` takes the
input of layer ``start`` (the raw features when ``start == 0``) and returns the input of layer ``stop``
(the logits when ``stop == num_layers``). A strategy can cut the model anywhere: a pipeline stage runs
one range, and the fused bias + ReLU + dropout of a hidden layer stays inside the range that computes
the layer, so what crosses a stage boundary is exactly what the next layer reads.

Dropout sites: site ``l`` is the dropout on layer ``l``'s input (site ``num_layers`` for models with an
output projection); masks come from ``prop.mask_key(site)`` (see ``models/masks.py``).

Who reads what: the strategies (``distgnn/parallel``) ``num_layers``, ``forward_range``,
``range_parameters``, ``replicated_parameters``, ``input_width``/``output_width`` (pipeline stage
boundaries), ``exchange_widths`` (the pipeline's layer costs) and ``aggregation_norms`` (the graph
strategy builds what those aggregations read before the first epoch); the trainer ``first_layer``
(``--weight-decay-scope first``); the profiler ``exchange_widths``, ``input_width`` and ``output_width``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

from distgnn.models.inputs import Input
from distgnn.models.propagation import Norm, Propagation


class LayeredModel(nn.Module, ABC):
    """Base class of every model: ``forward`` is ``forward_range`` over every layer.

    A subclass implements every abstract member; ``replicated_parameters`` defaults to none.
    """

    @property
    @abstractmethod
    def num_layers(self) -> int:
        """How many layers (global ids ``0 .. num_layers - 1``) a strategy may cut between."""

    @property
    @abstractmethod
    def first_layer(self) -> nn.Module:
        """The module whose parameters ``--weight-decay-scope first`` regularises (the GCN paper's weight
        decay on the first layer)."""

    @abstractmethod
    def forward_range(
        self, h: Input, prop: Propagation, start: int, stop: int, *, x: Input | None = None
    ) -> Tensor:
        """Layers ``[start, stop)``; ``x`` (the raw features of the same rows) for models that read the
        input at every layer (GCNII's initial residual)."""

    @abstractmethod
    def range_parameters(self, start: int, stop: int) -> list[nn.Parameter]:
        """The parameters layers ``[start, stop)`` read (a pipeline stage owns and updates these)."""

    def conv_parameters(self) -> list[nn.Parameter]:
        """The propagation layers' parameters (``--conv-weight-decay`` regularises these); all by default."""
        return list(self.parameters())

    def replicated_parameters(self) -> list[nn.Parameter]:
        """Parameters every range reads (their gradients are summed over pipeline stages); none by default."""
        return []

    @abstractmethod
    def input_width(self, layer: int) -> int:
        """Width of the rows ``forward_range`` takes at layer ``layer`` (what crosses a stage boundary)."""

    @abstractmethod
    def output_width(self) -> int:
        """Width of the logits."""

    @abstractmethod
    def exchange_widths(self) -> list[int]:
        """Per layer, the width of the rows it aggregates over the graph (what a halo exchange sends per
        node; for attention, the projected rows plus the source attention terms)."""

    @abstractmethod
    def aggregation_norms(self) -> set[Norm]:
        """The norms the layers pass to ``prop.aggregate``/``aggregate_linear`` (empty for a model that only
        calls ``prop.attend``)."""

    def forward(self, x: Input, prop: Propagation) -> Tensor:
        return self.forward_range(x, prop, 0, self.num_layers, x=x)

    def check_range(self, start: int, stop: int) -> None:
        if not 0 <= start < stop <= self.num_layers:
            raise ValueError(f"layer range [{start}, {stop}) is not inside [0, {self.num_layers})")
