"""Dropout with a counter-based mask: fast, deterministic per seed, and no mask kept for the backward.

``keep[i] = (splitmix64(seed, i) >> 32) >= floor(p * 2^32)`` for the flat element index ``i``: a pure
function of (seed, index), so the C++ kernel is parallel and vectorised with no generator state, the
result does not depend on the thread count, and the backward recomputes the mask from the seed (an
N x F bool mask is never stored). The seed of each call is drawn from torch's RNG (the global one, or
``generator``), so ``torch.manual_seed`` and a checkpointed RNG state keep runs reproducible.

Implementations: ``cpu`` (C++/OpenMP, csrc/dropout.cpp), ``torch`` (the same hash in torch integer ops,
any device, through the custom op) and ``reference`` (the same hash under torch autograd). All three give
bit-identical outputs for one seed. There is no ``triton`` dropout kernel.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor

from distgnn.errors import DistGNNError
from distgnn.kernels import ops, reference
from distgnn.kernels.select import ENV_VAR, IMPLS, resolve, unavailable_reason

log = logging.getLogger("distgnn.kernels")

_SEED_BOUND = 2**62
_CPU_DTYPES = (torch.float32, torch.bfloat16)
_logged: set[str] = set()


def _log_once(key: str, msg: str, *args: object) -> None:
    if key not in _logged:
        _logged.add(key)
        log.warning(msg, *args)


def _auto(device: torch.device, dtype: torch.dtype) -> str:
    """``cpu`` for float32/bfloat16 CPU tensors when the extension builds, else ``torch`` (same masks)."""
    if device.type == "cpu" and dtype in _CPU_DTYPES:
        try:
            if unavailable_reason("cpu", device) is None:
                return "cpu"
        except DistGNNError as exc:
            _log_once("cpu", "distgnn.kernels: dropout %s; using impl='torch' (same masks)", exc)
    return "torch"


def resolve_dropout(impl: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """The dropout implementation to run for ``impl``; an explicit request raises if it cannot run."""
    if impl == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        # The variable names an aggregation kernel; triton has no dropout, so auto picks for it.
        if env and env not in ("auto", "triton"):
            return resolve(env, device)
        return _auto(device, dtype)
    if impl == "triton":
        raise DistGNNError("impl='triton' has no dropout kernel; use 'auto', 'cpu', 'torch' or 'reference'")
    if impl not in IMPLS:
        raise DistGNNError(f"unknown kernel impl {impl!r}; choose one of auto, {', '.join(IMPLS)}")
    return resolve(impl, device)


def dropout(
    x: Tensor,
    p: float,
    *,
    training: bool = True,
    relu: bool = False,
    bias: Tensor | None = None,
    generator: torch.Generator | None = None,
    impl: str = "auto",
) -> Tensor:
    """``x * keep / (1 - p)``, ``keep ~ Bernoulli(1 - p)``; ``x`` itself if p == 0 or not training.

    ``bias`` (added along the last dimension) and ``relu`` are applied first, in the same pass: a layer's
    bias and activation and the next layer's input dropout cost one read and one write. The seed is one
    draw from ``generator`` (torch's global CPU RNG if None). Output is contiguous.
    """
    if not isinstance(x, Tensor):
        raise DistGNNError(f"dropout expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise DistGNNError(f"dropout input must be a floating-point tensor, got {x.dtype}")
    if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0):
        raise DistGNNError(f"dropout p must be in [0, 1), got {p}")
    impl = resolve_dropout(impl, x.device, x.dtype)
    if impl == "cpu" and x.dtype not in _CPU_DTYPES:
        raise DistGNNError(f"impl='cpu' supports float32 and bfloat16 x, got {x.dtype}")
    if bias is not None and (
        not isinstance(bias, Tensor) or tuple(bias.shape) != tuple(x.shape[-1:]) or bias.device != x.device
    ):
        raise DistGNNError(f"dropout bias must be a tensor of shape {tuple(x.shape[-1:])} on {x.device}")
    if not training or p == 0.0:
        v = x if bias is None else x + bias
        return torch.relu(v) if relu else v
    device = generator.device if generator is not None else torch.device("cpu")
    seed = torch.randint(0, _SEED_BOUND, (1,), generator=generator, device=device)
    threshold = int(float(p) * 4294967296.0)  # keep iff the 32-bit draw >= threshold
    scale = 1.0 / (1.0 - float(p))
    if impl == "reference":
        return reference.dropout(x, int(seed.item()), threshold, scale, relu, bias)
    return ops.dropout_op(x.contiguous(), seed, threshold, scale, relu, bias, impl)
