"""The graph-parallel strategy's volume: halo rows per layer, forward and (where it applies) backward.

Per aggregation call of width W (see :mod:`distgnn.profile.exchanges`): forward, rank p sends rank q the
``send_rows[p, q]`` owned rows q needs, ``W * sizeof(wire)`` bytes each; backward (only when the rows
require grad), rank p returns the gradients of the halo rows it received from q, i.e. ``send_rows[q, p]``
rows. Halo staleness 1 moves the same bytes per epoch (this epoch's rows travel while last epoch's are
used), so it does not change the volume. Evaluation sends the forward rows once more, without gradients.

Per-rank memory (bytes, estimates where noted):

- ``graph``: the local in-edge CSR as the strategy holds it (int64 ``indptr`` and ``indices`` of the full,
  inner and boundary blocks, self-loops included) plus the send index and the fp32 degree vectors;
- ``features``: the owned rows of the input features (fp32);
- ``activations``: per layer the rows it aggregates, owned plus received halo rows, fp32, counted twice
  (the saved forward rows and their gradient); a lower bound on what autograd keeps;
- ``history``: halo staleness 1 buffers: last epoch's halo rows and, for layers with a backward
  exchange, the received gradients of the sent rows (fp32).
"""

from __future__ import annotations

from distgnn.kernels.csr import index_dtype
from distgnn.profile.exchanges import LayerExchange
from distgnn.profile.partition_info import PartitionInfo
from distgnn.profile.volume import Flow, Volume

FP32 = 4
INDEX = 8  # the halo plan's send indices (int64)


def predict_graph(
    info: PartitionInfo, exchanges: list[LayerExchange], *, wire_bytes: int, staleness: int = 0
) -> Volume:
    """The exact per-epoch halo volume of graph-parallel training on ``info``'s partition."""
    send = info.send_rows
    flows: list[Flow] = []
    eval_flows: list[Flow] = []
    for ex in exchanges:
        per_row = ex.width * wire_bytes
        flows.append(Flow(ex.key, "fwd", send, per_row, ex.width))
        if ex.backward:
            flows.append(Flow(ex.key, "bwd", send.T, per_row, ex.width))
        eval_flows.append(Flow(ex.key, "fwd", send, per_row, ex.width))
    world = info.num_parts
    if world == 1:  # one process exchanges nothing
        flows, eval_flows = [], []
    return Volume(
        strategy="graph",
        world_size=world,
        options={"wire_bytes": wire_bytes, "halo_staleness": staleness},
        flows=flows,
        eval_flows=eval_flows,
        memory=[_memory(info, p, exchanges, staleness) for p in range(world)],
    )


def _memory(info: PartitionInfo, p: int, exchanges: list[LayerExchange], staleness: int) -> dict[str, int]:
    n, h, e = int(info.n_owned[p]), int(info.n_halo[p]), int(info.n_edges[p])
    n_send = int(info.send_rows[p].sum())
    # full + inner + boundary CSR (indptr of n + 1 each; their indices add up to 2e) + self-loop copies,
    # in the index width the CSR picks for this part (int32 when it fits).
    width = index_dtype(n, n + h, e + n).itemsize
    csr = width * (3 * (n + 1) + 2 * e + 2 * (e + n) + 2 * (n + 1))
    graph = csr + INDEX * n_send + FP32 * (3 * n + 2 * h)
    rows = sum((n + h) * ex.width for ex in exchanges)
    history = 0
    if staleness:
        history = sum(h * ex.width + (n_send * ex.width if ex.backward else 0) for ex in exchanges)
    return {
        "graph": graph,
        "features": FP32 * n * info.feat_dim,
        "activations": 2 * FP32 * rows,
        "history": FP32 * history,
    }
