"""The collectives the strategies, the trainer, checkpoints and preflight share, each a no-op (or the
trivial answer) for one process: sum a tensor, sum gradients in one flat buffer, gather small values."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from distgnn import jsonio
from distgnn.comm.layout import ProcessLayout


def all_reduce(t: Tensor, layout: ProcessLayout) -> Tensor:
    """Sum ``t`` over ``layout``'s group in place (no-op for one process)."""
    if layout.is_distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=layout.group)
    return t


def sum_grads(params: list[nn.Parameter], layout: ProcessLayout) -> None:
    """Sum the gradients of ``params`` over ``layout``'s group with one all-reduce of a flat buffer."""
    if not params or not layout.is_distributed:
        return
    flat = all_reduce(torch.cat([p.grad.reshape(-1) for p in params]), layout)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def gather_json(value: Any, layout: ProcessLayout) -> list[Any]:
    """Every rank's ``value`` (JSON-serialisable: no pickle between ranks), in rank order, on every rank."""
    data = jsonio.dumps(value).encode()
    if layout.world_size == 1:
        return [jsonio.loads(data.decode())]
    dev = layout.device
    size = torch.tensor([len(data)], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(size) for _ in range(layout.world_size)]
    dist.all_gather(sizes, size, group=layout.group)
    longest = max(int(s) for s in sizes)
    buf = torch.zeros(longest, dtype=torch.uint8, device=dev)
    buf[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    bufs = [torch.zeros_like(buf) for _ in range(layout.world_size)]
    dist.all_gather(bufs, buf, group=layout.group)
    return [jsonio.loads(bytes(b[: int(n)].cpu().numpy()).decode()) for b, n in zip(bufs, sizes, strict=True)]
