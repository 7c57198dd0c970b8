"""Per-chunk halo exchange for the hybrid strategy (pipeline stages x graph parts).

Inside a stage, the graph-parallel ranks process chunk c together: before chunk c's aggregation at a
layer, each rank sends its peers the rows of *its* chunk c that they read (their halo rows in chunk c),
and in the backward pass the gradients of those rows travel back to their owners. Chunk c of the whole
graph is the union of chunk c of every part, so a halo row is fresh exactly when its owner's chunk comes
no later than the reader's, the same rule as for local rows. The plan is built once per chunking from the
part's send/receive lists and the chunk ids of the halo rows (one all-to-all with their owners).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from distgnn.comm.layout import ProcessLayout
from distgnn.parallel.chunks import Chunk, as_index
from distgnn.partitioning.part import Part


def all_to_all(send: Tensor, send_counts: list[int], recv_counts: list[int], layout: ProcessLayout) -> Tensor:
    """One uneven all-to-all of rows over ``layout``'s group."""
    out = send.new_empty((sum(recv_counts), *send.shape[1:]))
    dist.all_to_all_single(out, send.contiguous(), recv_counts, send_counts, group=layout.group)
    return out


def halo_values(part: Part, owned: Tensor, layout: ProcessLayout) -> Tensor:
    """``owned`` (one value per owned row) as the halo rows' owners hold it: the value of every halo row
    (a collective over ``layout``)."""
    send = owned[torch.from_numpy(np.asarray(part.send_idx, dtype=np.int64)).to(owned.device)]
    return all_to_all(send, np.diff(part.send_offsets).tolist(), np.diff(part.halo_offsets).tolist(), layout)


def halo_chunk_ids(part: Part, chunk_of: np.ndarray, layout: ProcessLayout) -> np.ndarray:
    """The chunk of every halo row, as its owner assigned it (a collective over ``layout``)."""
    return halo_values(part, torch.from_numpy(chunk_of.astype(np.int64)), layout).numpy()


@dataclass
class ChunkTransfer:
    """What chunk c exchanges: the owned rows of chunk c its peers read (sent), and the halo rows that
    their owners put in chunk c (received; written to the cache, and used at once where chunk c reads
    them). Both grouped by peer, in the matching order the partition's send lists fix."""

    send_pos: Tensor  # int64: positions within the chunk's rows
    send_counts: list[int]
    recv_slots: slice | Tensor  # cache slots of the received rows
    recv_counts: list[int]
    used: Tensor  # int64: positions among the received rows of those this chunk's aggregation reads
    used_pos: Tensor  # int64: their positions within the chunk's ``others``


def chunk_transfers(
    part: Part,
    chunk_of: np.ndarray,
    chunks: list[Chunk],
    slot_of: np.ndarray,
    device: torch.device | str = "cpu",
) -> dict[int, ChunkTransfer]:
    """Per chunk id: its transfer plan. ``chunk_of`` covers [owned | halo] rows (halo: owners' ids),
    ``slot_of`` gives their cache slots."""
    n, peers = part.n_owned, part.num_parts
    send_idx = np.asarray(part.send_idx, dtype=np.int64)
    send_peer = np.repeat(np.arange(peers), np.diff(part.send_offsets))
    halo_peer = np.repeat(np.arange(peers), np.diff(part.halo_offsets))
    out = {}
    for c in chunks:
        rows = c.rows.cpu().numpy()
        pos_in_chunk = np.full(n, -1, dtype=np.int64)
        pos_in_chunk[rows] = np.arange(len(rows))
        sel = chunk_of[send_idx] == c.index
        others = c.others.cpu().numpy()
        pos_in_others = np.full(n + part.n_halo, -1, dtype=np.int64)
        pos_in_others[others] = np.arange(len(others))  # by slot
        halo_sel = np.flatnonzero(chunk_of[n:] == c.index)
        recv_slots = slot_of[n + halo_sel]
        pos = pos_in_others[recv_slots]
        out[c.index] = ChunkTransfer(
            send_pos=torch.from_numpy(pos_in_chunk[send_idx[sel]]).to(device),
            send_counts=np.bincount(send_peer[sel], minlength=peers).tolist(),
            recv_slots=as_index(recv_slots, device),
            recv_counts=np.bincount(halo_peer[halo_sel], minlength=peers).tolist(),
            used=torch.from_numpy(np.flatnonzero(pos >= 0)).to(device),
            used_pos=torch.from_numpy(pos[pos >= 0]).to(device),
        )
    return out
