"""Historical-embedding cache: per aggregation (layer key), the rows of every node a stage reads.

A pipeline stage aggregates chunk c of layer l over its in-neighbours' layer-l *message rows* (what the
layer hands to the aggregation: ``h`` or ``h @ W``, the rows a halo exchange would send). Rows of chunks
already computed this epoch are fresh; rows of later chunks are last epoch's values, read from here.
Fresh rows overwrite the cache as chunks are computed, so one buffer per layer holds both.

Rows are stored by *slot* (``slot_of[row]``, see ``distgnn.parallel.chunks.chunk_slots``), so that a
chunk's rows are one slice; checkpoints hold them in row order, independent of the chunking. Row indices
are a ``slice`` (a slice copy) or an int64 tensor of slots (``index_select``/``index_copy_``, which copy
whole rows, several times faster on CPU than advanced indexing).

Storage dtype is ``fp32`` (exact), or ``bf16``/``fp16`` (half the bytes; an approximation, also for the
fresh rows read back from the cache). ``grads`` collects, per layer, the gradients of reads of rows
(``deposit``); a row's backward takes its share (``take_grad``). Backward runs in reverse chunk order, so
a fresh read's gradient is deposited before its row's backward, in the same epoch. The gradient of a
historical read would arrive after it: it is not deposited (historical rows are constants), or, with
deferred historical gradients (``--history-grad defer``, PipeGCN-style), it is and waits in the buffer
for the row's backward one epoch later. Only then is the buffer state between epochs
(``keep_history_grads``: saved in checkpoints).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

Index = slice | Tensor  # cache slots: a contiguous range, or int64 slots


class HistoryCache:
    def __init__(
        self,
        slot_of: np.ndarray,
        dtype: str = "fp32",
        device: torch.device | str = "cpu",
        *,
        keep_history_grads: bool = False,
    ) -> None:
        self.num_rows = len(slot_of)
        self.slot_of = torch.from_numpy(np.asarray(slot_of, dtype=np.int64))  # row -> slot (checkpoints)
        self.dtype = DTYPES[dtype]
        self.device = torch.device(device)
        self.keep_history_grads = keep_history_grads
        self.rows: dict[int, Tensor] = {}  # key -> [num_rows, F] in self.dtype, by slot
        self.grads: dict[int, Tensor] = {}  # key -> [num_rows, F] float32, by slot

    def write(self, key: int, slots: Index, values: Tensor) -> None:
        buf = self.rows.get(key)
        if buf is None or buf.shape[1] != values.shape[1]:
            buf = self.rows[key] = torch.zeros(
                self.num_rows, values.shape[1], dtype=self.dtype, device=self.device
            )
        values = values.detach().to(self.dtype)
        if isinstance(slots, slice):
            buf[slots] = values
        else:
            buf.index_copy_(0, slots, values)

    def read_into(self, key: int, slots: Tensor, out: Tensor) -> None:
        """Copy the rows at ``slots`` into ``out`` (a contiguous float32 tensor of their shape)."""
        buf = self.rows[key]
        if buf.dtype == out.dtype:
            torch.index_select(buf, 0, slots, out=out)
        else:
            out.copy_(buf.index_select(0, slots))

    def deposit(self, key: int, slots: Tensor, grad: Tensor) -> None:
        """Add the gradient of reads of the rows at ``slots`` (unique)."""
        g = self.grads.get(key)
        if g is None:
            g = self.grads[key] = torch.zeros(
                self.num_rows, grad.shape[1], dtype=torch.float32, device=grad.device
            )
        g.index_add_(0, slots, grad.to(torch.float32))

    def take_grad(self, key: int, slots: Index, into: Tensor | None = None) -> Tensor | None:
        """``into`` plus the gradient deposited for the rows at ``slots`` (just that gradient when
        ``into`` is None; None if nothing was ever deposited), which is then zeroed."""
        g = self.grads.get(key)
        if g is None:
            return into
        if isinstance(slots, slice):
            part = g[slots]
            out = part.clone() if into is None else into + part.to(into.dtype)
            part.zero_()
        else:
            part = g.index_select(0, slots)
            out = part if into is None else into + part.to(into.dtype)
            g.index_fill_(0, slots, 0)
        return out

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.rows.values())

    def state_dict(self) -> dict:
        """Rows (in row order) and, when they are kept, the gradients waiting for the next epoch
        (between epochs nothing else is pending)."""
        state = {"dtype": str(self.dtype), "rows": {k: self._by_row(v) for k, v in self.rows.items()}}
        if self.keep_history_grads:
            state["grads"] = {k: self._by_row(v) for k, v in self.grads.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.rows = {int(k): self._by_slot(v) for k, v in state["rows"].items()}
        waiting = state.get("grads", state.get("deferring", {}))  # "deferring": checkpoints before 2026-11-30
        self.grads = {int(k): self._by_slot(v) for k, v in waiting.items()}

    def _by_row(self, buf: Tensor) -> Tensor:
        return buf.cpu().index_select(0, self.slot_of)

    def _by_slot(self, by_row: Tensor) -> Tensor:
        return torch.empty_like(by_row).index_copy_(0, self.slot_of, by_row).to(self.device)
