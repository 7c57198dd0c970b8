"""Profiler pieces without processes: strict JSON, per-layer exchanges, volume algebra, network model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distgnn import jsonio
from distgnn.comm.volume import analytic_bytes
from distgnn.errors import DistGNNError
from distgnn.metrics import MetricsWriter
from distgnn.profile import strategies
from distgnn.profile.exchanges import LayerExchange, ModelSpec, layer_exchanges
from distgnn.profile.graph_volume import predict_graph
from distgnn.profile.network import PRESETS, Network
from distgnn.profile.network_file import parse_network
from distgnn.profile.partition_info import PartitionInfo


def test_strict_json_writes_null_and_refuses_nan(tmp_path):
    assert jsonio.dumps({"a": math.nan, "b": [1.0, math.inf], "c": (2, -math.inf)}) == (
        '{"a": null, "b": [1.0, null], "c": [2, null]}'
    )
    for bad in ('{"a": NaN}', "[Infinity]", "-Infinity"):
        with pytest.raises(ValueError, match="not strict JSON"):
            jsonio.loads(bad)
    w = MetricsWriter(tmp_path / "m.jsonl")
    w.write({"epoch": 1, "train_acc": math.nan, "loss": 0.5})
    w.close()
    assert jsonio.loads((tmp_path / "m.jsonl").read_text()) == {"epoch": 1, "train_acc": None, "loss": 0.5}


@pytest.mark.parametrize(
    "spec, in_dim, expect",
    [
        (ModelSpec("gcn", 2, 16), 10, [(0, 10, False), (1, 3, True)]),  # raw features first: no gradient
        (ModelSpec("gcn", 3, 8), 10, [(0, 8, True), (1, 8, True), (2, 3, True)]),
        (ModelSpec("sage", 2, 32), 10, [(0, 10, False), (1, 3, True)]),
        (ModelSpec("gat", 2, 4, heads=2), 10, [(0, 2 * 4 + 2, True), (1, 3 + 1, True)]),
        (ModelSpec("deepgcn", 3, 8), 10, [(0, 8, True), (1, 8, True), (2, 8, True)]),
    ],
)
def test_layer_exchanges_come_from_the_model(spec, in_dim, expect):
    got = layer_exchanges(spec, in_dim, 3)
    assert [(e.key, e.width, e.backward) for e in got] == expect


def _info(send: np.ndarray, feat_dim: int = 5) -> PartitionInfo:
    p = send.shape[0]
    return PartitionInfo(
        path="mem",
        meta={"feat_dim": feat_dim, "num_classes": 2},
        send_rows=send,
        n_owned=np.full(p, 10),
        n_halo=send.sum(axis=0),
        n_edges=np.full(p, 40),
    )


def test_graph_volume_matches_the_analytic_total_and_splits_by_direction():
    send = np.array([[0, 3, 1], [2, 0, 4], [0, 5, 0]])
    ex = [LayerExchange(0, 5, False), LayerExchange(1, 7, True)]
    vol = predict_graph(_info(send), ex, wire_bytes=2)
    s = vol.summary()
    halo = send.sum(axis=0)  # rows each part receives
    assert s["total_bytes"] == analytic_bytes(halo, [5, 7], backward=[False, True]) // 2
    assert s["fwd_bytes"] == halo.sum() * (5 + 7) * 2 and s["bwd_bytes"] == halo.sum() * 7 * 2
    assert s["per_rank_bytes"] == list(send.sum(axis=1) * 12 * 2 + send.sum(axis=0) * 7 * 2)
    assert np.array_equal(np.array(s["peer_bytes"]), send * 24 + send.T * 14)
    assert s["straggler"]["rank"] == int(np.argmax(np.maximum(s["per_rank_bytes"], s["per_rank_recv_bytes"])))
    assert s["eval_bytes"] == halo.sum() * 12 * 2
    assert [r["layer"] for r in s["per_layer_bytes"]] == [0, 1]
    assert all(m["history"] == 0 for m in s["per_rank_memory_bytes"])
    stale = predict_graph(_info(send), ex, wire_bytes=2, staleness=1).summary()
    assert stale["total_bytes"] == s["total_bytes"]  # same bytes per epoch, just one epoch late
    assert all(m["history"] > 0 for m in stale["per_rank_memory_bytes"])


def test_a_new_strategy_is_one_registry_entry(monkeypatch):
    assert set(strategies.PREDICTORS) == set(strategies.KNOWN_STRATEGIES)  # every strategy is predicted
    monkeypatch.delitem(strategies.PREDICTORS, "hybrid")
    with pytest.raises(DistGNNError, match="'hybrid' is not supported by the profiler yet"):
        strategies.predictor("hybrid")
    with pytest.raises(DistGNNError, match="unknown strategy 'ring'"):
        strategies.predictor("ring")
    monkeypatch.setitem(strategies.PREDICTORS, "hybrid", strategies.PREDICTORS["graph"])
    assert strategies.predictor("hybrid") is strategies.PREDICTORS["graph"]


def test_network_specs_and_presets():
    assert parse_network("bandwidth=25GB/s,latency=5us") == Network(25e9, 5e-6)
    assert parse_network(" latency=1ms , bandwidth=10Gb/s ") == Network(1.25e9, 1e-3)
    assert parse_network("bandwidth=1GiB/s,latency=2e-6s").bandwidth == 2**30
    assert parse_network("ib-hdr") is PRESETS["ib-hdr"]
    for bad in ("bandwidth=25,latency=5us", "bandwidth=25GB/s", "fast", "bandwidth=0GB/s,latency=1us"):
        with pytest.raises(DistGNNError, match="cannot parse network"):
            parse_network(bad)


def test_alpha_beta_exchange_time_is_the_busiest_rank():
    net = Network(bandwidth=100.0, latency=1.0)
    peer = np.array([[0, 100, 0], [200, 0, 300], [0, 0, 0]])
    # rank 1 sends 2 messages: (1 + 2) + (1 + 3) = 7 s; rank 2 receives one of 300 B: 4 s.
    assert net.exchange_time(peer) == pytest.approx(7.0)
    assert net.exchange_time(np.zeros((2, 2))) == 0.0


def _rank(rank: int, exchanges: list[dict]) -> dict:
    return {"rank": rank, "epochs": [{"epoch": 2, "exchanges": exchanges}]}


def test_transfer_time_starts_at_the_last_ranks_launch():
    from distgnn.profile.skew import transfer_seconds

    def x(layer, direction, spans):
        return {"layer": layer, "direction": direction, "spans": spans}

    # Layer 0 fwd, two calls: rank 1 launches 0.8 s late (its computation ran longer); the transfer itself
    # takes 0.25 s and 0.1 s after the late launch. Rank 0's in-flight time (1.05 s) is mostly skew.
    r0 = [x(0, "fwd", [[10.0, 11.05], [20.0, 20.1]]), x(1, "eval", [[30.0, 39.0]]), x(2, "p2p", [[0.0, 5.0]])]
    r1 = [x(0, "fwd", [[10.8, 11.0], [19.5, 20.05]]), x(1, "eval", [[30.0, 31.0]])]
    # A slot the ranks called a different number of times is not a collective of both: left out.
    r0.append(x(1, "bwd", [[40.0, 41.0], [42.0, 43.0]]))
    r1.append(x(1, "bwd", [[40.0, 41.0]]))
    profile = {"ranks": [_rank(0, r0), _rank(1, r1)]}
    assert transfer_seconds(profile) == {2: pytest.approx(0.25 + 0.1)}
    assert transfer_seconds(profile, ("eval",)) == {2: pytest.approx(9.0)}
    profile["ranks"][1]["epochs"][0]["exchanges"][0]["spans"] = None  # recorded with CUDA events
    with pytest.raises(DistGNNError, match="no per-call spans"):
        transfer_seconds(profile)


def _options(argv: list[str]) -> dict:
    """``{flag: argparse action}`` of a subcommand's parser (`distgnn train`, `distgnn profile predict`)."""
    from distgnn.cli import build_parser

    parser = build_parser()
    for name in argv:
        parser = next(a for a in parser._actions if a.choices and name in a.choices).choices[name]
    return {flag: a for a in parser._actions for flag in a.option_strings}


def test_profile_takes_trains_model_and_parallel_options_from_the_config():
    from distgnn.cli import build_parser
    from distgnn.commands.options import section_from_args
    from distgnn.config import ModelConfig, ParallelConfig

    train = _options(["train"])
    shared = "--model --layers --hidden --heads --chunks --comm-dtype --halo-staleness"
    for sub, extra in (
        (["profile", "predict"], "--strategy --stages --stage-layers"),
        (["profile", "sweep"], ""),
    ):
        mine = _options(sub)
        for flag in (shared + " " + extra).split():  # the very option train has: help, default, type
            a, b = mine[flag], train[flag]
            assert (a.dest, a.help, a.default, a.type) == (b.dest, b.help, b.default, b.type), flag
            # --strategy: choices shown, checked by the predictor registry (one line, not a usage error)
            unchecked = (flag, a.choices, a.metavar) == ("--strategy", None, "{graph,pipeline,hybrid}")
            assert a.choices == b.choices or unchecked, flag
        assert "--dropout" not in mine and "--kernel" not in mine  # they change no byte
    # The sweep's --strategy (a list) and --stages (hybrid's S) are its own.
    assert _options(["profile", "sweep"])["--strategy"].dest == "strategy"
    parse = build_parser().parse_args
    args = parse(["profile", "predict", "--partitions", "d"])
    assert section_from_args(args, "model") == ModelConfig()
    assert section_from_args(args, "parallel") == ParallelConfig()
    argv = "--model gat --heads 2 --strategy pipeline --stages 2 --stage-layers 1,1".split()
    args = parse(["profile", "predict", "--partitions", "d", *argv])
    assert section_from_args(args, "model") == ModelConfig(name="gat", heads=2)
    assert section_from_args(args, "parallel") == ParallelConfig(
        strategy="pipeline", stages=2, stage_layers=(1, 1)
    )
