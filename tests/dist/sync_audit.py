"""Count host synchronisations: the calls that, on CUDA tensors, make the host wait for the device.

Two nets, because CPU tensors never really wait: Python-level patches of ``Tensor.item``, ``tolist``,
``__bool__``, ``cpu``, ``nonzero`` (and ``__float__`` / ``__int__``, which read a scalar the same way),
wherever they are called; and a ``TorchDispatchMode`` that sees the same reads when C++ makes them
inside an op (``aten::nonzero`` behind a boolean-mask index, ``aten::_local_scalar_dense`` behind
``float(t)``), at the level of the calling code. A read inside an instrumented method is counted once.

``HOST_RESIDENT`` lists the call sites whose tensor is a CPU tensor by construction, which do not wait
for a GPU: the dropout seed (``dropout_api`` makes it a 1-element int64 tensor on the CPU whatever the
input's device; the op reads it back to launch the kernel) and Adam's step counter (torch keeps it on
the CPU unless ``capturable``/``fused``; ``torch.optim.optimizer._get_value`` reads it).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

METHODS = ("item", "tolist", "__bool__", "cpu", "nonzero", "__float__", "__int__")
HOST_RESIDENT = {("ops.py", "dropout_op"), ("optimizer.py", "_get_value")}
_SYNC_OPS = ("nonzero", "_local_scalar_dense", "masked_select")
_MASK_INDEX_OPS = ("index", "index_put", "index_put_", "_index_put_impl_")  # sync with a boolean index


def _site() -> tuple[str, str]:
    """(file name, function) of the innermost Python caller outside this module and torch's dispatch
    machinery (a torch file when torch itself reads, e.g. the optimiser)."""
    f = sys._getframe(2)
    while f is not None:
        path = f.f_code.co_filename.replace("\\", "/")
        if not path.endswith(("sync_audit.py", "_python_dispatch.py", "_ops.py", "eval_frame.py")):
            return path.rsplit("/", 1)[-1], f.f_code.co_name
        f = f.f_back
    return "?", "?"


class SyncAudit:
    """The host reads seen while active: ``calls`` lists (what, file, function); ``syncs`` leaves out
    the host-resident sites."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self._depth = 0

    @property
    def syncs(self) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if (c[1], c[2]) not in HOST_RESIDENT]

    def record(self, what: str) -> None:
        self.calls.append((what, *_site()))

    @contextlib.contextmanager
    def active(self) -> Iterator[SyncAudit]:
        originals = {name: getattr(torch.Tensor, name) for name in METHODS}
        own = {name for name in METHODS if name in torch.Tensor.__dict__}  # others are inherited

        def wrap(name, fn):
            def method(t, *args, **kwargs):
                if self._depth == 0:
                    self.record(name)
                self._depth += 1
                try:
                    return fn(t, *args, **kwargs)
                finally:
                    self._depth -= 1

            return method

        for name, fn in originals.items():
            setattr(torch.Tensor, name, wrap(name, fn))
        try:
            with _OpReads(self):
                yield self
        finally:
            for name, fn in originals.items():
                if name in own:
                    setattr(torch.Tensor, name, fn)
                else:
                    delattr(torch.Tensor, name)


class _OpReads(TorchDispatchMode):
    def __init__(self, audit: SyncAudit) -> None:
        super().__init__()
        self.audit = audit

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if self.audit._depth == 0:
            if name in _SYNC_OPS:
                self.audit.record(f"aten::{name}")
            elif name in _MASK_INDEX_OPS and any(_is_mask(i) for i in args[1]):
                self.audit.record(f"aten::{name} (boolean mask)")
            elif name == "repeat_interleave" and (kwargs or {}).get("output_size") is None and len(args) < 3:
                self.audit.record("aten::repeat_interleave (no output_size)")
        return func(*args, **(kwargs or {}))


def _is_mask(t: object) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8)
