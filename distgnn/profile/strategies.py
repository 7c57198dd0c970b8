"""Strategy name -> volume predictor: the one table a new strategy adds itself to.

A predictor takes the partition (:class:`PartitionInfo`: meta, sizes, per-peer routing, its directory
for anything else it must read), what the model exchanges per layer (:class:`LayerExchange` list, from
the model itself) and the strategy options, and returns a :class:`Volume` (its flows per layer and
direction, evaluation flows, per-rank memory). A new strategy adds one function here plus a test that
its prediction equals a real run's measured bytes (see tests/profile/test_predict_equals_measured.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from distgnn.errors import DistGNNError
from distgnn.profile.exchanges import LayerExchange, ModelSpec
from distgnn.profile.graph import predict_graph
from distgnn.profile.partition_info import PartitionInfo
from distgnn.profile.volume import Volume

KNOWN_STRATEGIES = ("graph", "pipeline", "hybrid")  # what the engine is designed to run
WIRE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class StrategyOptions:
    """Options of ``distgnn train`` that change the traffic (stages/chunks: pipeline and hybrid)."""

    comm_dtype: str = "fp32"
    halo_staleness: int = 0
    stages: int = 1
    chunks: int = 1
    stage_layers: tuple[int, ...] | None = None

    @property
    def wire_bytes(self) -> int:
        if self.comm_dtype not in WIRE_BYTES:
            raise DistGNNError(f"comm-dtype must be one of {', '.join(WIRE_BYTES)}, got {self.comm_dtype!r}")
        return WIRE_BYTES[self.comm_dtype]


Predictor = Callable[[PartitionInfo, list[LayerExchange], StrategyOptions, ModelSpec], Volume]


def _graph(
    info: PartitionInfo, exchanges: list[LayerExchange], opts: StrategyOptions, spec: ModelSpec
) -> Volume:
    return predict_graph(info, exchanges, wire_bytes=opts.wire_bytes, staleness=opts.halo_staleness)


def check_options(strategy: str, opts: StrategyOptions) -> None:
    """Options a strategy cannot run with (checked before any partition is read or built)."""
    if strategy != "graph" and (opts.comm_dtype != "fp32" or opts.halo_staleness):
        raise DistGNNError(
            f"--halo-staleness and --comm-dtype apply to --strategy graph only, not {strategy}"
        )


def _staged(strategy: str) -> Predictor:
    def predict(
        info: PartitionInfo, exchanges: list[LayerExchange], opts: StrategyOptions, spec: ModelSpec
    ) -> Volume:
        from distgnn.profile.pipeline import predict_pipeline

        check_options(strategy, opts)
        if strategy == "pipeline" and info.num_parts != 1:
            raise DistGNNError(
                f"--strategy pipeline needs a 1-part partition directory, {info.path} has {info.num_parts}"
            )
        return predict_pipeline(
            info, exchanges, spec, stages=opts.stages, stage_layers=opts.stage_layers, strategy=strategy
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
