"""`distgnn profile` and `distgnn train --profile-out/--trace` end to end on a real 2-rank run.

Every file the CLI writes is parsed with a strict JSON parser (NaN/Infinity refused); the report draws
every plot from the real run; the sweep runs on a small graph and reuses its partition cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distgnn import jsonio
from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph
from distgnn.profile.skew import transfer_seconds

REPO = Path(__file__).resolve().parent.parent.parent
SMALL = "synthetic:nodes=300,edges=2400,features=12,classes=3"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def strict(text: str):
    return jsonio.loads(text)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real 2-process `distgnn train` with metrics, profile and traces (evaluation every 2nd epoch)."""
    root = tmp_path_factory.mktemp("profile-cli")
    graph = synthetic_graph(num_nodes=150, num_edges=900, num_features=10, num_classes=3, seed=4)
    parts = root / "p2"
    partition_graph(graph, 2, parts, progress=False)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO)
    args = ["--partitions", str(parts), "--nproc", "2", "--epochs", "4", "--eval-every", "2"]
    args += ["--metrics-out", "m.jsonl", "--profile-out", "p.json", "--trace", "tr", "--kernel", "reference"]
    proc = subprocess.run(
        [sys.executable, "-m", "distgnn", "train", *args, "--no-progress"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "parts": parts}


@pytest.mark.timeout(200)
def test_every_file_the_cli_writes_is_strict_json(run_cli, run):
    root = run["root"]
    records = [strict(line) for line in (root / "m.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    # Not evaluated: accuracies are absent, written as null (never NaN).
    assert [r["val_acc"] is None for r in records] == [True, False, True, False]
    profile = strict((root / "p.json").read_text())
    assert profile["history"] == records
    strict((run["parts"] / "meta.json").read_text())
    for rank in (0, 1):
        trace = strict((root / "tr" / f"trace-rank{rank}.json").read_text())
        names = {e.get("name") for e in trace["traceEvents"]}
        assert {"halo/layer0/fwd/launch", "halo/layer0/fwd/wait", "halo/layer1/bwd/launch"} <= names
        assert "aggregate/inner" in names  # computation overlapped with a transfer in flight
    code, out, _ = run_cli(["info", str(run["parts"]), "--json"])
    assert code == 0
    strict(out)
    code, out, err = run_cli(["profile", "predict", "--partitions", str(run["parts"]), "--json"])
    assert code == 0, err
    assert strict(out)["total_bytes"] == records[0]["comm_bytes"]


def test_profile_records_every_rank_epoch_layer_and_peer(run):
    profile = strict((run["root"] / "p.json").read_text())
    assert profile["format"] == "distgnn-profile" and profile["world_size"] == 2
    for r in profile["ranks"]:
        assert [e["epoch"] for e in r["epochs"]] == [1, 2, 3, 4]
        for e in r["epochs"]:
            assert e["wall_s"] >= e["compute_s"] > 0
            slots = {(x["layer"], x["direction"]) for x in e["exchanges"]}
            # hidden 16 > 10 features: layer 0 aggregates raw features, so it sends no gradients back.
            assert {(0, "fwd"), (1, "fwd"), (1, "bwd")} <= slots and (0, "bwd") not in slots
            for x in e["exchanges"]:
                assert len(x["sent_bytes"]) == 2 and x["sent_bytes"][r["rank"]] == 0
                assert x["in_flight_s"] > 0 and x["exposed_s"] == pytest.approx(x["launch_s"] + x["wait_s"])
                assert len(x["spans"]) == x["calls"] and all(0 < a <= b for a, b in x["spans"])
                assert sum(b - a for a, b in x["spans"]) == pytest.approx(x["in_flight_s"], abs=1e-6)
        evaluated = [e["epoch"] for e in r["epochs"] if any(x["direction"] == "eval" for x in e["exchanges"])]
        assert evaluated == [2, 4]
    # Timed from its last launch, a call lasts no longer than the longest of the ranks' own spans of it (the
    # rank that completed last launched no later than the last launch). Summed per epoch; the slack covers
    # each process's own reading of the Unix-time offset.
    transfer = transfer_seconds(profile)
    assert sorted(transfer) == [1, 2, 3, 4]
    for e in range(4):
        by_slot = [
            {(x["layer"], x["direction"]): x["spans"] for x in r["epochs"][e]["exchanges"]}
            for r in profile["ranks"]
        ]
        longest = sum(
            max(b - a for a, b in call)
            for slot, spans in by_slot[0].items()
            if slot[1] != "eval"
            for call in zip(spans, *(other[slot] for other in by_slot[1:]), strict=True)
        )
        assert 0 < transfer[e + 1] <= longest + 1e-5


def test_report_renders_every_plot_from_a_real_run(run_cli, run, tmp_path):
    code, out, err = run_cli(["profile", "report", str(run["root"] / "p.json"), "--out", str(tmp_path)])
    assert code == 0, err
    assert "exposed comm ms" in out and "bytes / epoch" in out
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["bytes_per_layer.png", "epoch_breakdown.png", "peer_heatmap.png"]
    for name in pngs:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name


def test_predict_what_if_from_a_run(run_cli, run):
    args = ["profile", "predict", "--partitions", str(run["parts"]), "--network", "eth-25g"]
    code, out, err = run_cli([*args, "--from-run", str(run["root"] / "p.json"), "--json"])
    assert code == 0, err
    w = strict(out)["what_if"]
    assert w["network"]["name"] == "eth-25g" and w["comm_s"] > 0
    assert w["epoch_s_no_overlap"] >= w["epoch_s"] > w["from_run"]["non_comm_s"] > 0
    code, out, _ = run_cli(args)
    assert code == 0 and "on eth-25g" in out


def test_predict_on_a_calibrated_network_file(run_cli, run, tmp_path):
    from distgnn.config import ParallelConfig
    from distgnn.profile.calibration import fit_interpolated
    from distgnn.profile.exchanges import ModelSpec
    from distgnn.profile.network_file import save_network
    from distgnn.profile.predict import predict_volume

    sizes = [2**k for k in range(10, 16)]
    net = fit_interpolated(sizes, [1e-3 + s / 1e8 for s in sizes], peers=1, name="loopback-2")
    save_network(tmp_path / "net.json", net, {"world_size": 2})
    args = ["profile", "predict", "--partitions", str(run["parts"]), "--network", str(tmp_path / "net.json")]
    code, out, err = run_cli([*args, "--json"])
    assert code == 0, err
    w = strict(out)["what_if"]
    vol = predict_volume(run["parts"], ModelSpec("gcn", 2, 16), ParallelConfig())
    assert w["network"]["name"] == "loopback-2" and len(w["network"]["segments"]) == len(sizes)
    assert w["comm_s"] == pytest.approx(net.epoch_time(vol), rel=1e-12) and w["comm_s"] > 0
    code, out, _ = run_cli(args)
    assert code == 0 and "on loopback-2" in out


@pytest.mark.timeout(120)
def test_sweep_on_a_small_graph_reuses_its_cache_and_reports(run_cli, tmp_path):
    args = ["profile", "sweep", "--dataset", SMALL, "--parts", "4,2", "--out", str(tmp_path / "sw")]
    args += ["--model", "deepgcn", "--layers", "4", "--hidden", "8", "--network", "ib-hdr", "--no-progress"]
    code, out, err = run_cli([*args, "--json"])
    assert code == 0, err
    result = strict(out)
    assert result == strict((tmp_path / "sw" / "sweep.json").read_text())
    assert [r["parts"] for r in result["rows"]] == [2, 4]
    for r in result["rows"]:
        assert r["total_bytes"] > 0 and r["straggler_bytes"] <= r["total_bytes"] and r["comm_s"] > 0
        assert r["replication_factor"] > 1 and r["max_rank_memory_bytes"] >= r["mean_rank_memory_bytes"]
    assert result["rows"][1]["total_bytes"] > result["rows"][0]["total_bytes"]  # more parts, more halo
    cached = sorted((tmp_path / "sw" / "partitions").iterdir())
    stamps = [(d / "meta.json").stat().st_mtime_ns for d in cached]
    code, out, err = run_cli(args)  # second run: partitions come from the cache
    assert code == 0, err
    assert "replication" in out
    assert [(d / "meta.json").stat().st_mtime_ns for d in cached] == stamps
    code, out, err = run_cli(["profile", "report", str(tmp_path / "sw")])
    assert code == 0, err
    for name in ("volume_vs_parts.png", "memory_vs_parts.png"):
        assert (tmp_path / "sw" / name).read_bytes()[:8] == PNG_MAGIC


def _bad_meta(tmp_path: Path, run) -> Path:
    target = tmp_path / "v99"
    target.mkdir()
    meta = json.loads((run["parts"] / "meta.json").read_text())
    (target / "meta.json").write_text(json.dumps(meta | {"version": 99}))
    return target


@pytest.mark.parametrize(
    "case, message",
    [
        ("version", "partition format version 99 is not supported"),
        ("too_many_parts", "cannot split 300 nodes into 512 parts"),
        ("network", "cannot parse network 'bandwidth=fast'"),
        ("network_file", "meta.json is not a distgnn-network file"),
        ("pipeline", "--strategy pipeline needs a 1-part partition directory"),
        ("unknown", "unknown strategy 'ring'"),
        ("not_a_profile", "is not a distgnn-profile file"),
        ("parts_list", "--parts must be comma-separated integers"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run_cli, run, tmp_path, case, message):
    parts = str(run["parts"])
    out_dir = tmp_path / "out"
    argv = {
        "version": [
            "profile",
            "predict",
            "--partitions",
            str(_bad_meta(tmp_path, run) if case == "version" else parts),
        ],
        "too_many_parts": ["profile", "sweep", "--dataset", SMALL, "--parts", "2,512", "--out", str(out_dir)],
        "network": ["profile", "predict", "--partitions", parts, "--network", "bandwidth=fast"],
        "network_file": ["profile", "predict", "--partitions", parts, "--network", f"{parts}/meta.json"],
        "pipeline": ["profile", "predict", "--partitions", parts, "--strategy", "pipeline", "--stages", "2"],
        "unknown": ["profile", "predict", "--partitions", parts, "--strategy", "ring"],
        "not_a_profile": ["profile", "report", str(run["parts"] / "meta.json"), "--out", str(out_dir)],
        "parts_list": ["profile", "sweep", "--dataset", SMALL, "--parts", "2,x", "--out", str(out_dir)],
    }[case]
    code, out, err = run_cli([*argv, "--no-progress"] if argv[1] == "sweep" else argv)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out_dir.exists()  # nothing partial: no partitions, no sweep.json, no PNGs
