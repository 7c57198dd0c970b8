"""Strategy name -> volume predictor: the one table a new strategy adds itself to.

A predictor takes the partition (:class:`PartitionInfo`: meta, sizes, per-peer routing, its directory
for anything else it must read), what the model exchanges per layer (:class:`LayerExchange` list, from
the model itself) and the run's :class:`~distgnn.config.ParallelConfig` (``distgnn train``'s parallel
options: the graph predictor reads comm_dtype, precision and halo_staleness, the pipeline and hybrid
ones stages and stage_layers), and returns a :class:`Volume` (its flows per layer and direction,
evaluation flows, per-rank memory). A new strategy adds one function here plus a test that its
prediction equals a real run's measured bytes (see tests/profile/test_predict_equals_measured.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from distgnn.config import STRATEGIES, ParallelConfig
from distgnn.errors import DistGNNError
from distgnn.parallel.precision import COMPUTE_DTYPES
from distgnn.profile.exchanges import LayerExchange, ModelSpec
from distgnn.profile.graph_volume import predict_graph
from distgnn.profile.partition_info import PartitionInfo
from distgnn.profile.volume import Volume

KNOWN_STRATEGIES = STRATEGIES  # what the engine is designed to run (distgnn.config)

Predictor = Callable[[PartitionInfo, list[LayerExchange], ParallelConfig, ModelSpec], Volume]


def _graph(
    info: PartitionInfo, exchanges: list[LayerExchange], opts: ParallelConfig, spec: ModelSpec
) -> Volume:
    # Halo rows travel as --comm-dtype where it casts (16-bit), else in the compute dtype (--precision).
    wire = opts.torch_comm_dtype if opts.comm_dtype != "fp32" else COMPUTE_DTYPES[opts.precision]
    return predict_graph(info, exchanges, wire_bytes=wire.itemsize, staleness=opts.halo_staleness)


def check_options(strategy: str, values: Mapping[str, Any]) -> None:
    """Graph-only options given to another strategy, named with it (``values``: ParallelConfig fields;
    checked before any config is built, partition read or built)."""
    comm_dtype = values.get("comm_dtype", ParallelConfig.comm_dtype)
    if strategy != "graph" and (comm_dtype != ParallelConfig.comm_dtype or values.get("halo_staleness")):
        raise DistGNNError(
            f"--halo-staleness and --comm-dtype apply to --strategy graph only, not {strategy}"
        )


def parallel_config(values: Mapping[str, Any]) -> ParallelConfig:
    """The validated ParallelConfig of ``values`` (its fields), after the profiler's own checks: a
    strategy it has a predictor for, and graph-only options named with the strategy."""
    strategy = values.get("strategy", ParallelConfig.strategy)
    predictor(strategy)
    check_options(strategy, values)
    return ParallelConfig(**values)


def _staged(strategy: str) -> Predictor:
    def predict(
        info: PartitionInfo, exchanges: list[LayerExchange], opts: ParallelConfig, spec: ModelSpec
    ) -> Volume:
        from distgnn.profile.pipeline_volume import predict_pipeline

        if opts.strategy != strategy:
            raise DistGNNError(f"the {strategy} predictor got a --strategy {opts.strategy} config")
        if strategy == "pipeline" and info.num_parts != 1:
            raise DistGNNError(
                f"--strategy pipeline needs a 1-part partition directory, {info.path} has {info.num_parts}"
            )
        return predict_pipeline(
            info,
            exchanges,
            spec,
            stages=opts.stages,
            stage_layers=opts.stage_layers,
            strategy=strategy,
            wire_bytes=COMPUTE_DTYPES[opts.precision].itemsize,
        )

    return predict


PREDICTORS: dict[str, Predictor] = {
    "graph": _graph,
    "pipeline": _staged("pipeline"),
    "hybrid": _staged("hybrid"),
}


def predictor(strategy: str) -> Predictor:
    """The predictor of ``strategy``; a clear error for one the profiler does not know (yet)."""
    if strategy in PREDICTORS:
        return PREDICTORS[strategy]
    if strategy in KNOWN_STRATEGIES:
        supported = ", ".join(PREDICTORS)
        raise DistGNNError(
            f"strategy {strategy!r} is not supported by the profiler yet (supported: {supported})"
        )
    raise DistGNNError(f"unknown strategy {strategy!r}; choose one of {', '.join(KNOWN_STRATEGIES)}")
