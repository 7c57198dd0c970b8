"""What every model offers a strategy: run a range of layers, and say which parameters a range uses.

Layers have *global* ids ``0 .. num_layers - 1``; ``forward_range(h, prop, start, stop)`` takes the
input of layer ``start`` (the raw features when ``start == 0``) and returns the input of layer ``stop``
(the logits when ``stop == num_layers``). A strategy can cut the model anywhere: a pipeline stage runs
one range, and the fused bias + ReLU + dropout of a hidden layer stays inside the range that computes
the layer, so what crosses a stage boundary is exactly what the next layer reads.

Dropout sites: site ``l`` is the dropout on layer ``l``'s input (site ``num_layers`` for models with an
output projection); masks come from ``prop.mask_key(site)`` (see ``models/masks.py``).
"""

from __future__ import annotations

from torch import Tensor, nn

from distgnn.models.inputs import Input
from distgnn.models.propagation import Propagation


class LayeredModel(nn.Module):
    """Base class: ``forward`` is ``forward_range`` over every layer."""

    @property
    def num_layers(self) -> int:
        raise NotImplementedError

    def forward_range(
        self, h: Input, prop: Propagation, start: int, stop: int, *, x: Input | None = None
    ) -> Tensor:
        """Layers ``[start, stop)``; ``x`` (the raw features of the same rows) for models that read the
        input at every layer (GCNII's initial residual)."""
        raise NotImplementedError

    def range_parameters(self, start: int, stop: int) -> list[nn.Parameter]:
        """The parameters layers ``[start, stop)`` read (a pipeline stage owns and updates these)."""
        raise NotImplementedError

    def input_width(self, layer: int) -> int:
        """Width of the rows ``forward_range`` takes at layer ``layer`` (what crosses a stage boundary)."""
        raise NotImplementedError

    def output_width(self) -> int:
        """Width of the logits."""
        raise NotImplementedError

    def replicated_parameters(self) -> list[nn.Parameter]:
        """Parameters every range reads (their gradients are summed over pipeline stages)."""
        return []

    def forward(self, x: Input, prop: Propagation) -> Tensor:
        return self.forward_range(x, prop, 0, self.num_layers, x=x)

    def check_range(self, start: int, stop: int) -> None:
        if not 0 <= start < stop <= self.num_layers:
            raise ValueError(f"layer range [{start}, {stop}) is not inside [0, {self.num_layers})")
