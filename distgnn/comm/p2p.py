"""Stage-to-stage messages of the pipeline: activations to the next stage, gradients to the previous one.

A :class:`StageLink` is the one place a pipeline stage talks point to point (the way Megatron-core keeps
its ``P2PCommunicator`` apart from the schedule): the schedule (``parallel/pipeline.py``) says what to
send and when; the link says to whom, under which tag, and posts the receives. Peers are the same graph
part's ranks in the neighbouring stages of the 2-D mesh.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import Tensor

from distgnn.comm.mesh import Mesh2D

FWD, BWD = 0, 1  # message directions: activations forward, gradients back

Pending = tuple[Tensor, dist.Work] | None  # a posted receive: (its buffer, its work), None: nothing comes


class StageLink:
    """Point-to-point links of this rank's stage to its neighbours in ``mesh``."""

    def __init__(self, mesh: Mesh2D) -> None:
        self.mesh = mesh

    @property
    def is_first(self) -> bool:
        return self.mesh.stage == 0

    @property
    def is_last(self) -> bool:
        return self.mesh.stage == self.mesh.stages - 1

    def peer(self, step: int) -> int:
        """The world rank ``step`` stages away (+1: next, -1: previous), same graph part."""
        return self.mesh.world_rank(self.mesh.stage + step, self.mesh.graph_rank)

    @staticmethod
    def tag(chunk: int, direction: int) -> int:
        """Gloo matches messages by tag: a stage starts an epoch only after its neighbour consumed the
        last one, so (chunk, direction) tells every message apart. (NCCL ignores tags and matches by
        order, which the posting order keeps.)"""
        return chunk * 2 + direction

    def send(self, t: Tensor, chunk: int, direction: int) -> tuple[dist.Work, int]:
        """Send ``t`` (chunk ``chunk``) forward (FWD: to the next stage) or back (BWD: to the previous
        one); returns the work and the bytes sent."""
        t = t.contiguous()
        step = +1 if direction == FWD else -1
        return dist.isend(
            t, dst=self.peer(step), tag=self.tag(chunk, direction)
        ), t.numel() * t.element_size()

    def post_receives(
        self, chunks: list[tuple[int, int]], direction: int, width: int, *, dtype: torch.dtype = torch.float32
    ) -> dict[int, Pending]:
        """Post a phase's receives for ``chunks`` ((chunk index, rows), in the order the peer sends them:
        NCCL matches messages between two ranks by order, not tag): activations from the previous stage
        (FWD) or output gradients from the next (BWD). {chunk index: pending}, None where nothing comes
        (the first stage receives no activations, the last no gradients). ``dtype``: what the peer sends.

        Each is its own ``irecv``, not one ``batch_isend_irecv``: a coalesced batch completes as a whole,
        and chunk 0 could not start before the last chunk arrived."""
        if (direction == FWD and self.is_first) or (direction == BWD and self.is_last):
            return dict.fromkeys((index for index, _ in chunks), None)
        peer = self.peer(-1 if direction == FWD else +1)
        out: dict[int, Pending] = {}
        for index, rows in chunks:
            buf = torch.empty(rows, width, dtype=dtype, device=self.mesh.world.device)
            out[index] = (buf, dist.irecv(buf, src=peer, tag=self.tag(index, direction)))
        return out

    @staticmethod
    def wait(pending: Pending) -> tuple[Tensor | None, float]:
        """The received tensor once it is there, and the seconds spent waiting for it."""
        if pending is None:
            return None, 0.0
        buf, work = pending
        t0 = time.perf_counter()
        work.wait()
        return buf, time.perf_counter() - t0
