"""The pipeline and hybrid strategies' volume: stage boundaries, plus per-chunk halo exchanges (hybrid).

World rank ``s * G + g`` runs stage s on part g (G = the partition's parts; 1 for the pipeline). Per
epoch, whatever the chunk count:

- every stage boundary s -> s+1: rank (s, g) sends all of part g's rows of the next stage's input width
  forward, and receives their gradients back (fp32);
- inside a stage (hybrid), each layer of the stage moves every halo row once forward, in the exchange of
  its owner's chunk, and once back where the layer's input needs a gradient (fp32), as in
  graph-parallel training. Evaluation moves the forward rows once more.

The layer split is the strategy's own (``distgnn.parallel.pipeline``: ``--stage-layers`` or the cost model
over the whole graph's sizes), so prediction and measurement agree by construction of the same split.
Memory adds the history cache: per layer of the stage, every owned and halo row (fp32).
"""

from __future__ import annotations

import numpy as np

from distgnn.models.registry import build_model
from distgnn.parallel.pipeline import layer_costs, split_layers
from distgnn.profile.exchanges import LayerExchange, ModelSpec
from distgnn.profile.graph_volume import FP32, predict_graph
from distgnn.profile.partition_info import PartitionInfo
from distgnn.profile.volume import Flow, Volume


def stage_ranges(spec: ModelSpec, info: PartitionInfo, stages: int, stage_layers: tuple | None) -> list:
    """The strategy's split of the layers into stages, and each layer's input width."""
    model = build_model(
        spec.model, info.feat_dim, spec.hidden, info.num_classes, layers=spec.layers, heads=spec.heads
    )
    if stage_layers:
        bounds = np.concatenate([[0], np.cumsum(stage_layers)])
        ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    else:
        costs = layer_costs(model, int(info.n_owned.sum()), int(info.n_edges.sum()))
        ranges = split_layers(costs, stages)
    return [(a, b, model.input_width(b) if b < model.num_layers else model.output_width()) for a, b in ranges]


def predict_pipeline(
    info: PartitionInfo, exchanges: list[LayerExchange], spec: ModelSpec, *, stages: int,
    stage_layers: tuple | None = None, strategy: str = "pipeline", wire_bytes: int = FP32,
) -> Volume:  # fmt: skip
    """The exact per-epoch volume of pipeline (1 part) or hybrid (G parts) training on ``info``; halo rows
    and stage messages travel at ``wire_bytes`` per element (the compute dtype's: ``--precision``)."""
    g = info.num_parts
    world = stages * g
    halo = predict_graph(info, exchanges, wire_bytes=wire_bytes)
    flows: list[Flow] = []
    eval_flows: list[Flow] = []
    ranges = stage_ranges(spec, info, stages, stage_layers)
    for s, (start, stop, out_width) in enumerate(ranges):
        block = slice(s * g, (s + 1) * g)
        for f in halo.flows:
            if start <= f.key < stop:
                flows.append(_placed(f, world, block, block))
        for f in halo.eval_flows:
            if start <= f.key < stop:
                eval_flows.append(_placed(f, world, block, block))
        if s + 1 < stages:
            rows = np.zeros((world, world), dtype=np.int64)
            rows[np.arange(s * g, (s + 1) * g), np.arange((s + 1) * g, (s + 2) * g)] = info.n_owned
            key = -(s + 1)  # boundaries are not layers: negative keys, -1 after stage 0
            flows.append(Flow(key, "fwd", rows, wire_bytes * out_width, out_width))
            flows.append(Flow(key, "bwd", rows.T.copy(), wire_bytes * out_width, out_width))
            eval_flows.append(Flow(key, "fwd", rows, wire_bytes * out_width, out_width))
    memory = []
    for start, stop, _ in ranges:
        layers = [ex for ex in exchanges if start <= ex.key < stop]
        for p in range(g):
            m = dict(halo.memory[p])
            rows = int(info.n_owned[p] + info.n_halo[p])
            m["history"] = FP32 * rows * sum(ex.width for ex in layers)
            memory.append(m)
    return Volume(
        strategy=strategy,
        world_size=world,
        options={"wire_bytes": wire_bytes, "stages": stages, "ranges": [r[:2] for r in ranges]},
        flows=flows,
        eval_flows=eval_flows,
        memory=memory,
    )


def _placed(f: Flow, world: int, rows: slice, cols: slice) -> Flow:
    """``f`` (a [G, G] flow of one stage's graph ranks) inside the [world, world] matrix."""
    m = np.zeros((world, world), dtype=np.int64)
    m[rows, cols] = f.rows
    return Flow(f.key, f.direction, m, f.bytes_per_row, f.width)
