"""One-epoch-stale halo rows and halo gradients (PipeGCN-style), per call site ``key``.

This is an explicit approximation, used only when the halo propagation (``distgnn.parallel.halo_prop``)
is built with ``staleness=1``:

- Forward, epoch t >= 1: the layer aggregates the halo rows its peers sent in epoch t-1 while this
  epoch's rows travel in the background (they are used in epoch t+1).
- Backward, epoch t >= 1: the owned-row gradient receives the halo gradients peers computed in
  epoch t-1, while this epoch's halo gradients travel in the background.
- Epoch 0 (the first call for a key) is an exact synchronous exchange, forward and backward; its
  results seed the buffers. So the first epoch equals exact training, and no zeros are ever used.

Buffers can be saved and restored (:meth:`state_dict`), so a resumed run continues the same recurrence.
Every rank must make the same calls in the same order (each exchange is a collective).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import torch
from torch import Tensor

from distgnn.comm.halo import HaloExchange, PendingExchange, flat_rows
from distgnn.errors import DistGNNError


class StaleHalo:
    """Per-key buffers: ``rows[key]`` halo rows [halo, W], ``grads[key]`` gradients of sent rows [send, W]."""

    def __init__(self, exchange: HaloExchange) -> None:
        self.ex = exchange
        self.rows: dict[Hashable, Tensor] = {}
        self.grads: dict[Hashable, Tensor] = {}
        self._pending_rows: dict[Hashable, PendingExchange] = {}
        self._pending_grads: dict[Hashable, PendingExchange] = {}

    def fetch(self, h: Tensor, *, key: Hashable) -> Tensor:
        """Halo rows [halo, ...] for ``h`` [owned, ...]: exact on first use of a key, then one epoch stale."""
        shape = (self.ex.plan.n_halo, *h.shape[1:])
        if key not in self.rows and key not in self._pending_rows:
            handle = self.ex.start(h, key=key, on_grad=self._keep_grad)
            out = handle.wait()
            self.rows[key] = flat_rows(handle.received().detach())
            return out
        self._settle_rows(key)
        stale = self.rows[key]
        if stale.shape[1] != math.prod(h.shape[1:]) or stale.dtype != h.dtype:
            raise DistGNNError(
                f"stale halo buffer for key {key!r} holds rows of width {stale.shape[1]} ({stale.dtype}) "
                f"but the layer now exchanges {tuple(h.shape[1:])} ({h.dtype})"
            )
        self._pending_rows[key] = self.ex.launch_forward(h, key=key)
        if h.requires_grad and torch.is_grad_enabled():
            return _StaleRows.apply(h, self, key).reshape(shape)
        return stale.reshape(shape)

    def flush(self) -> None:
        """Wait for every exchange in flight and move its result into the buffers (e.g. before exit)."""
        for key in list(self._pending_rows):
            self._settle_rows(key)
        for key in list(self._pending_grads):
            self._settle_grads(key)

    def state_dict(self) -> dict[str, dict[Hashable, Tensor]]:
        """The buffers as of now (pending exchanges are waited for first); CPU tensors."""
        self.flush()
        return {
            "rows": {k: v.detach().cpu() for k, v in self.rows.items()},
            "grads": {k: v.detach().cpu() for k, v in self.grads.items()},
        }

    def load_state_dict(self, state: dict[str, dict[Hashable, Tensor]]) -> None:
        if set(state) != {"rows", "grads"}:
            raise DistGNNError("stale halo state must have exactly the entries 'rows' and 'grads'")
        self.flush()
        dev = self.ex.plan.send_idx.device
        for k, v in state["rows"].items():
            if v.shape[0] != self.ex.plan.n_halo:
                raise DistGNNError(
                    f"stale halo state for key {k!r} has {v.shape[0]} rows but this part has "
                    f"{self.ex.plan.n_halo} halo rows"
                )
        for k, v in state["grads"].items():
            if v.shape[0] != self.ex.plan.n_send:
                raise DistGNNError(
                    f"stale gradient state for key {k!r} has {v.shape[0]} rows but this part sends "
                    f"{self.ex.plan.n_send} rows"
                )
        self.rows = {k: v.to(dev) for k, v in state["rows"].items()}
        self.grads = {k: v.to(dev) for k, v in state["grads"].items()}

    # -- internals ---------------------------------------------------------------------------------
    def _keep_grad(self, key: Hashable, received: Tensor) -> None:
        self.grads[key] = received.detach()

    def _settle_rows(self, key: Hashable) -> None:
        pending = self._pending_rows.pop(key, None)
        if pending is not None:
            self.rows[key] = pending.wait()

    def _settle_grads(self, key: Hashable) -> None:
        pending = self._pending_grads.pop(key, None)
        if pending is not None:
            self.grads[key] = pending.wait()

    def _swap_grads(self, key: Hashable, grad_rows: Tensor) -> Tensor | None:
        """Send this epoch's halo gradients in the background; return the previous epoch's received ones."""
        self._settle_grads(key)
        previous = self.grads.get(key)
        self._pending_grads[key] = self.ex.launch_backward(grad_rows.contiguous(), key=key)
        return previous


class _StaleRows(torch.autograd.Function):
    """Forward: the previous epoch's halo rows. Backward: the previous epoch's halo gradients."""

    @staticmethod
    def forward(ctx, h: Tensor, stale: StaleHalo, key: Hashable) -> Tensor:
        ctx.stale, ctx.key = stale, key
        ctx.h_shape, ctx.h_dtype = h.shape, h.dtype
        return stale.rows[key].clone()

    @staticmethod
    def backward(ctx, grad_rows: Tensor):
        stale: StaleHalo = ctx.stale
        previous = stale._swap_grads(ctx.key, grad_rows)
        if previous is None:  # no gradient ever received for this key (e.g. restored without one)
            return torch.zeros(ctx.h_shape, dtype=ctx.h_dtype, device=grad_rows.device), None, None
        return stale.ex.accumulate(previous, ctx.h_shape, ctx.h_dtype), None, None
