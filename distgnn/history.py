"""Historical-embedding cache: per aggregation (layer key), the rows of every node a stage reads.

A pipeline stage aggregates chunk c of layer l over its in-neighbours' layer-l *message rows* (what the
layer hands to the aggregation: ``h`` or ``h @ W``, the rows a halo exchange would send). Rows of chunks
already computed this epoch are fresh; rows of later chunks are last epoch's values, read from here.
Fresh rows overwrite the cache as chunks are computed, so one buffer per layer holds both.

Storage dtype is ``fp32`` (exact), or ``bf16``/``fp16`` (half the bytes; an approximation, also for the
fresh rows read back from the cache). ``grads`` collects, per layer, the gradients that later chunks send
back to rows they read fresh; a chunk takes its rows' share when its own backward reaches that layer.
With deferred historical gradients (``--history-grad defer``, PipeGCN-style), the gradients of rows read
from history are collected too (``defer``) and handed out with the fresh ones one epoch later
(``start_epoch`` makes this epoch's collection the next epoch's).
"""

from __future__ import annotations

import torch
from torch import Tensor

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class HistoryCache:
    def __init__(self, num_rows: int, dtype: str = "fp32", device: torch.device | str = "cpu") -> None:
        self.num_rows = num_rows
        self.dtype = DTYPES[dtype]
        self.device = torch.device(device)
        self.rows: dict[int, Tensor] = {}  # key -> [num_rows, F] in self.dtype
        self.grads: dict[int, Tensor] = {}  # key -> [num_rows, F] float32
        self.deferred: dict[int, Tensor] = {}  # historical reads' gradients collected last epoch
        self.deferring: dict[int, Tensor] = {}  # ... and this epoch

    def write(self, key: int, rows: Tensor, values: Tensor) -> None:
        buf = self.rows.get(key)
        if buf is None or buf.shape[1] != values.shape[1]:
            buf = self.rows[key] = torch.zeros(
                self.num_rows, values.shape[1], dtype=self.dtype, device=self.device
            )
        buf[rows] = values.detach().to(self.dtype)

    def read(self, key: int, rows: Tensor) -> Tensor:
        return self.rows[key][rows].to(torch.float32)

    def deposit(self, key: int, rows: Tensor, grad: Tensor) -> None:
        """Add the gradient of fresh reads of ``rows`` (summed into their owners' backward later)."""
        _accumulate(self.grads, key, rows, grad, self.num_rows)

    def defer(self, key: int, rows: Tensor, grad: Tensor) -> None:
        """Add the gradient of historical reads of ``rows``: handed out in the next epoch."""
        _accumulate(self.deferring, key, rows, grad, self.num_rows)

    def start_epoch(self) -> None:
        """Gradients deferred last epoch become this epoch's; any not taken are dropped."""
        self.deferred, self.deferring = self.deferring, {}

    def take_grad(self, key: int, rows: Tensor) -> Tensor | None:
        """The gradient deposited for ``rows`` (plus what was deferred to this epoch), then zeroed; None
        if nothing was."""
        out = None
        for store in (self.grads, self.deferred):
            g = store.get(key)
            if g is not None:
                out = g[rows] if out is None else out + g[rows]
                g[rows] = 0
        return out

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.rows.values())

    def state_dict(self) -> dict:
        """Rows and the gradients deferred to the next epoch (between epochs nothing else is pending)."""
        return {
            "dtype": str(self.dtype),
            "rows": {k: v.cpu() for k, v in self.rows.items()},
            "deferring": {k: v.cpu() for k, v in self.deferring.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.rows = {int(k): v.to(self.device) for k, v in state["rows"].items()}
        self.deferring = {int(k): v.to(self.device) for k, v in state.get("deferring", {}).items()}


def _accumulate(store: dict[int, Tensor], key: int, rows: Tensor, grad: Tensor, num_rows: int) -> None:
    g = store.get(key)
    if g is None:
        g = store[key] = torch.zeros(num_rows, grad.shape[1], dtype=torch.float32, device=grad.device)
    g.index_add_(0, rows, grad.to(torch.float32))
