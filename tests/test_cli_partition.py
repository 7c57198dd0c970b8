"""`distgnn partition` and `distgnn info` through the real CLI entry point (and once as a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import distgnn.data
import distgnn.data.shape
from distgnn import cli
from distgnn.data.graph import Graph
from distgnn.data.shape import SourceShape
from distgnn.partitioning import load_meta, reassemble

sys.path.insert(0, str(Path(__file__).parent / "partitioning"))
from toy_graphs import build_graph  # noqa: E402


@pytest.fixture
def loads(monkeypatch):
    """Serve `--dataset toy` / `--dataset empty` from hand-built graphs; records what was loaded."""
    calls: list[str] = []

    def load_graph(spec: str, *, progress: bool = True, csr=None) -> Graph:
        calls.append(spec)
        if spec == "empty":
            return Graph(
                np.zeros(1, np.int64),
                np.zeros(0, np.int64),
                np.zeros((0, 2), np.float32),
                np.zeros(0, np.int64),
                np.zeros(0, bool),
                np.zeros(0, bool),
                np.zeros(0, bool),
                2,
            )
        return build_graph()

    def source_shape(spec: str) -> SourceShape:
        g = build_graph()
        return SourceShape(0, 0, 2) if spec == "empty" else SourceShape(g.num_nodes, g.num_edges, g.feat_dim)

    monkeypatch.setattr(distgnn.data, "load_graph", load_graph, raising=False)
    monkeypatch.setattr(distgnn.data.shape, "source_shape", source_shape)
    return calls


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_partition_then_info(capsys, tmp_path, loads):
    out = tmp_path / "parts"
    code, stdout, stderr = run(
        capsys, "partition", "--dataset", "toy", "--parts", "3", "--out", str(out), "--no-progress"
    )
    assert code == 0 and stderr == ""
    g = build_graph()
    lines = stdout.splitlines()
    assert lines[0] == (
        f"wrote 3 parts of toy (600 nodes, {g.num_edges:,} edges) to {out} (metis, objective cut, seed 0)"
    )
    assert lines[1].startswith("  time: load ") and "partition " in lines[1] and "build+write " in lines[1]
    meta = load_meta(out)
    q = meta["quality"]
    assert f"edge cut {q['edge_cut']:,} ({100 * q['edge_cut_fraction']:.2f}% of edges)" in lines[2]
    np.testing.assert_array_equal(reassemble(out).indices, g.indices)

    code, stdout, _ = run(capsys, "info", str(out))
    assert code == 0
    text = stdout.splitlines()
    assert text[0] == f"partition   {out}"
    assert text[2] == f"dataset     toy: 600 nodes, {g.num_edges:,} edges, 5 features, 3 classes"
    assert text[3] == "method      metis, objective cut, seed 0"
    table = text[text.index("") + 1 :]
    assert len(table) == 4 and len({len(row) for row in table}) == 1  # header + 3 aligned rows
    assert table[0].split() == [
        "part",
        "node",
        "range",
        "owned",
        "halo",
        "in-edges",
        "cut",
        "in-edges",
        "send",
        "rows",
        "train",
    ]
    for p, row in enumerate(table[1:]):
        s, e = meta["node_ranges"][p]
        stats = q["parts"][p]
        cells = [stats[k] for k in ("n_owned", "n_halo", "n_edges", "n_cut")]
        cells += [meta["part_sizes"][p]["n_send"], stats["n_train"]]
        assert row.split() == [str(p), f"[{s:,},", f"{e:,})", *(f"{v:,}" for v in cells)]

    code, stdout, _ = run(capsys, "info", str(out), "--json", "--verify")
    shown = json.loads(stdout)
    assert code == 0 and "checksums" not in shown and shown["verified_files"] == 42
    assert shown["quality"] == q and shown["node_ranges"] == meta["node_ranges"]


def test_progress_goes_to_stderr(capsys, tmp_path, loads):
    code, stdout, stderr = run(
        capsys,
        "partition",
        "--dataset",
        "toy",
        "--parts",
        "2",
        "--out",
        str(tmp_path / "p"),
        "--method",
        "kaminpar",
    )
    assert code == 0
    assert "partitioning 600 nodes" in stderr and "with KaMinPar" in stderr and "building parts" in stderr
    assert stdout.startswith("wrote 2 parts of toy") and "(kaminpar, objective cut, seed 0)" in stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--parts", "601"], "cannot split 600 nodes into 601 parts: use at most 600 parts"),
        (["--parts", "0"], "--parts must be at least 1, got 0"),
        (
            ["--parts", "2", "--method", "kaminpar", "--objective", "vol"],
            "--objective vol needs --method metis: KaMinPar only minimises the edge cut",
        ),
        (["--parts", "2", "--dataset", "empty"], "graph is empty: it has no nodes"),
    ],
)
def test_partition_errors_exit_2_with_one_line(capsys, tmp_path, loads, argv, message):
    out = tmp_path / "parts"
    args = ["partition", "--dataset", "toy", "--out", str(out), "--no-progress"]
    code, stdout, stderr = run(capsys, *args, *argv)
    assert code == 2 and stdout == ""
    assert stderr == f"distgnn partition: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force_and_fails_before_loading(capsys, tmp_path, loads):
    out = tmp_path / "parts"
    base = ["partition", "--dataset", "toy", "--parts", "2", "--out", str(out), "--no-progress"]
    assert run(capsys, *base)[0] == 0
    loads.clear()
    code, _, stderr = run(capsys, *base, "--method", "random")
    assert code == 2 and loads == []
    assert stderr == (
        f"distgnn partition: error: output directory {out} already exists and is not empty "
        "(pass --force to replace it)\n"
    )
    code, _, _ = run(capsys, *base, "--method", "random", "--force")
    assert code == 0 and load_meta(out)["method"] == "random"


def test_info_errors_exit_2_with_one_line(capsys, tmp_path, loads):
    code, _, stderr = run(capsys, "info", str(tmp_path / "missing"))
    assert (
        code == 2
        and stderr == f"distgnn info: error: partition directory {tmp_path / 'missing'} does not exist\n"
    )

    out = tmp_path / "parts"
    assert (
        run(capsys, "partition", "--dataset", "toy", "--parts", "2", "--out", str(out), "--no-progress")[0]
        == 0
    )
    target = out / "part-0" / "indices.npy"
    target.write_bytes(target.read_bytes()[:-8] + b"\x01" * 8)
    assert run(capsys, "info", str(out))[0] == 0  # the summary does not read the arrays
    code, _, stderr = run(capsys, "info", str(out), "--verify")
    assert (
        code == 2
        and stderr
        == f"distgnn info: error: checksum mismatch for {target}: the file is corrupt or was modified\n"
    )

    meta = json.loads((out / "meta.json").read_text())
    meta["version"] = 7
    (out / "meta.json").write_text(json.dumps(meta))
    code, _, stderr = run(capsys, "info", str(out))
    assert code == 2
    assert (
        stderr
        == "distgnn info: error: partition format version 7 is not supported (this distgnn reads version 1)\n"
    )


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["partition", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--method {metis,kaminpar,random,contiguous}" in text and "--force" in text


def test_partition_a_synthetic_graph_through_the_real_loader(capsys, tmp_path):
    out = tmp_path / "parts"
    spec = "synthetic:nodes=500,edges=4000,features=8"
    code, stdout, _ = run(
        capsys, "partition", "--dataset", spec, "--parts", "2", "--out", str(out), "--no-progress"
    )
    assert code == 0, stdout
    g = distgnn.data.load_graph(spec, progress=False)
    back = reassemble(out)
    np.testing.assert_array_equal(back.indices, g.indices)
    np.testing.assert_array_equal(back.x, g.x)


@pytest.mark.timeout(120)
def test_console_script(tmp_path):
    from distgnn.partitioning import partition_graph

    out = tmp_path / "parts"
    partition_graph(build_graph(), 2, out, method="contiguous", progress=False)
    exe = Path(sys.executable).with_name("distgnn")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "distgnn"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [*cmd, "info", str(out), "--json"], capture_output=True, text=True, env=env, timeout=100
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_parts"] == 2
    done = subprocess.run(
        [*cmd, "info", str(tmp_path / "nope")], capture_output=True, text=True, env=env, timeout=100
    )
    assert done.returncode == 2
    assert done.stderr == f"distgnn info: error: partition directory {tmp_path / 'nope'} does not exist\n"
