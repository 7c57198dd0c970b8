"""Partitioning under a memory budget: the out-of-core path (CSR normalised on disk, KaMinPar on its
compressed graph, parts built from the memory-mapped CSR) writes what the in-memory path writes, keeps
under its budget, and a budget it cannot meet is one line before any work."""

from __future__ import annotations

import errno
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import distgnn.commands.partition as partition_command
from distgnn import cli
from distgnn.data import load_graph, save_graph_dir, save_npz, synthetic_graph
from distgnn.data.csr_on_disk import CsrOnDisk
from distgnn.data.npy_writer import NpyAppender
from distgnn.errors import DistGNNError
from distgnn.partitioning import partition_graph
from distgnn.partitioning.bounded import bounded_parts
from distgnn.partitioning.budget import MemoryPlan, parse_size
from distgnn.partitioning.edges import symmetric_csr

# 90 MB: under the in-memory estimate for the graph below (96 MB), over the out-of-core one (83 MB).
OUT_OF_CORE = ("partition", "--no-progress", "--parts", "4", "--method", "random", "--memory-budget", "90MB")
TINY = 1 << 20  # 1 MiB: the 800k keys of the graph below (6.4 MB) take at least 7 bucket passes
MB = 10**6


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bounded")
    graph = synthetic_graph(20_000, 400_000, 16, seed=4)
    save_npz(graph, root / "g.npz")
    save_graph_dir(graph, root / "gdir")
    return {"npz": root / "g.npz", "dir": root / "gdir"}


def plan(method: str) -> MemoryPlan:
    return MemoryPlan(TINY, True, method, "forced by the test", 0, 0, TINY)


def same_files(a: Path, b: Path) -> None:
    ma, mb = json.loads((a / "meta.json").read_text()), json.loads((b / "meta.json").read_text())
    assert ma["checksums"] == mb["checksums"]
    names = sorted(ma["checksums"])
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert (mismatch, errors) == ([], []) and len(match) == len(names) > 20


@pytest.mark.parametrize(
    ("method", "reorder"), [("random", "none"), ("contiguous", "rcm"), ("random", "degree")]
)
@pytest.mark.parametrize("source", ["npz", "dir"])
def test_a_tiny_budget_writes_the_in_memory_parts_byte_for_byte(tmp_path, sources, source, method, reorder):
    spec = str(sources[source])
    kw = {"method": method, "seed": 2, "reorder": reorder, "progress": False}
    partition_graph(load_graph(spec, progress=False), 4, tmp_path / "memory", **kw)
    graph = load_graph(spec, progress=False, csr=CsrOnDisk(tmp_path / "csr", TINY))
    assert type(graph.indices).__name__ == "memmap"  # the CSR really is the on-disk one
    meta = partition_graph(graph, 4, tmp_path / "bounded", memory=plan(method), scratch=tmp_path, **kw)
    same_files(tmp_path / "memory", tmp_path / "bounded")
    assert meta["memory"]["path"] == "bounded" and meta["method"] == method


def test_out_of_core_kaminpar_partitions_the_compressed_graph(tmp_path, sources):
    pytest.importorskip("kaminpar")
    spec = str(sources["dir"])
    whole = partition_graph(
        load_graph(spec, progress=False), 4, tmp_path / "memory", method="kaminpar", progress=False
    )
    graph = load_graph(spec, progress=False, csr=CsrOnDisk(tmp_path / "csr", TINY))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    meta = partition_graph(
        graph, 4, tmp_path / "bounded", memory=plan("kaminpar"), scratch=scratch, progress=False
    )
    assert meta["method"] == "kaminpar"
    assert list(scratch.iterdir()) == []  # the symmetric CSR and the ParHIP file are gone
    # KaMinPar with 2 threads is not deterministic: compressed or not, the cut is as good (within 10%)
    # and the node balance within KaMinPar's 3%.
    assert meta["quality"]["edge_cut"] <= 1.1 * whole["quality"]["edge_cut"]
    assert meta["quality"]["node_balance"] <= 1.031
    assert sorted(sum((list(range(*r)) for r in meta["node_ranges"]), [])) == list(range(20_000))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def partition_npz(capsys, sources, tmp_path, *argv: str) -> tuple[int, str, str]:
    """``distgnn partition`` of the test graph's .npz into ``tmp_path/parts``, in this process."""
    return run(capsys, "partition", "--dataset", str(sources["npz"]), "--out", str(tmp_path / "parts"), *argv)


def partition_process(*argv: str) -> subprocess.CompletedProcess:
    """``distgnn partition`` in its own process, so the peak RSS it prints is that command's alone."""
    cmd = [sys.executable, "-m", "distgnn", "partition", "--no-progress", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def peak_mb(stdout: str, budget: str) -> int:
    found = re.search(rf"memory: peak RSS (\d+) MB under a {budget} budget \(bounded\)", stdout)
    assert found, stdout
    return int(found.group(1))


def test_a_budget_below_what_fits_in_memory_runs_out_of_core_under_it(tmp_path, sources):
    # 90 MB: under the in-memory estimate for this graph (about 96 MB), over the out-of-core one (83 MB).
    args = ("--dataset", str(sources["npz"]), "--parts", "4", "--method", "random", "--out")
    partition_process(*args, str(tmp_path / "memory"))
    proc = partition_process(*args, str(tmp_path / "bounded"), "--memory-budget", "90MB")
    assert peak_mb(proc.stdout, "90 MB") <= 90
    same_files(tmp_path / "memory", tmp_path / "bounded")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch left


def test_a_metis_request_out_of_core_runs_kaminpar_under_the_budget_and_says_why(tmp_path, sources):
    pytest.importorskip("kaminpar")
    out = tmp_path / "parts"
    proc = partition_process(
        "--dataset", str(sources["dir"]), "--parts", "4", "--out", str(out), "--memory-budget", "100MB"
    )
    assert peak_mb(proc.stdout, "100 MB") <= 100
    meta = json.loads((out / "meta.json").read_text())
    assert meta["method"] == "kaminpar" and meta["memory"]["path"] == "bounded"
    why = "METIS has no compressed mode, so KaMinPar partitions the compressed graph"
    assert why in meta["memory"]["why"]
    assert "(kaminpar, objective cut, seed 0)" in proc.stdout.splitlines()[0]


def test_a_budget_nothing_can_meet_is_one_line_before_any_work(tmp_path, sources, capsys):
    code, stdout, stderr = partition_npz(capsys, sources, tmp_path, "--parts", "4", "--memory-budget", "50MB")
    assert code == 2 and stdout == ""
    assert stderr == (
        "distgnn partition: error: a memory budget of 50 MB is too small for 20,000 nodes, 400,000 input "
        "edges: partitioning it needs about 83 MB out of core (119 MB in memory); give --memory-budget 83 MB "
        "or more\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_default_budget_is_half_the_available_memory_and_said(tmp_path, sources, capsys, monkeypatch):
    monkeypatch.setattr(partition_command, "available_memory", lambda: 8 * 10**9)
    code, _, stderr = partition_npz(capsys, sources, tmp_path, "--parts", "2", "--method", "random")
    assert code == 0
    assert stderr.splitlines()[0] == (
        "memory budget 4.00 GB (50% of the available memory; --memory-budget sets it): fits in memory: "
        "about 96 MB for 20,000 nodes, 400,000 input edges"
    )


def test_volume_objective_out_of_core_is_refused(tmp_path, sources, capsys):
    argv = ("--parts", "2", "--objective", "vol", "--memory-budget", "100MB")
    code, _, stderr = partition_npz(capsys, sources, tmp_path, *argv)
    assert code == 2
    assert stderr == (
        "distgnn partition: error: --objective vol needs METIS in memory (about 119 MB, over the 100 MB "
        "budget); --objective cut partitions it out of core\n"
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("12GB", 12 * 10**9),
        ("1.5GiB", 3 * 2**29),
        ("800MB", 800 * MB),
        ("800m", 800 * MB),
        ("2e9", 2 * 10**9),
    ],
)
def test_sizes_read_as_users_write_them(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["12XB", "GB", "-1GB", ""])
def test_a_size_that_is_not_one_is_refused(text):
    with pytest.raises(DistGNNError, match="not a memory size"):
        parse_size(text)


def test_what_a_killed_run_left_beside_the_output_is_removed_by_the_next(tmp_path, sources, capsys):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    left = [tmp_path / f".parts.partial-{dead}-0a1b2c3d", tmp_path / f".parts.scratch-{dead}-0a1b2c3d"]
    running = tmp_path / f".parts.partial-{os.getpid()}-0a1b2c3d"  # a live run's: kept
    for d in (*left, running):
        d.mkdir()
        (d / "indices.npy").write_bytes(b"partial")
    out = str(tmp_path / "parts")
    code, _, err = run(capsys, *OUT_OF_CORE, "--dataset", str(sources["npz"]), "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["parts", running.name])


def broken_dir(root: Path, sources: dict[str, Path], fault: str) -> Path:
    """A copy of the test graph directory with one fault."""
    bad = root / "bad"
    shutil.copytree(sources["dir"], bad)
    if fault == "id out of range":
        src = np.load(bad / "edge_src.npy")
        src[123] = 20_000
        np.save(bad / "edge_src.npy", src)
    elif fault == "src and dst lengths differ":
        np.save(bad / "edge_dst.npy", np.load(bad / "edge_dst.npy")[:-1])
    elif fault == "y rows are not the nodes":
        np.save(bad / "y.npy", np.load(bad / "y.npy")[:-1])
    elif fault == "x rows are not the nodes":
        np.save(bad / "x.npy", np.load(bad / "x.npy")[:-1])
    elif fault == "truncated x.npy":
        data = (bad / "x.npy").read_bytes()
        (bad / "x.npy").write_bytes(data[: len(data) // 2])
    return bad


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("id out of range", "edge_src.npy: edge chunk 0, edge 123: node ID 20000 is outside the node range"),
        ("src and dst lengths differ", "edge arrays must be 1-D and equally long"),
        ("y rows are not the nodes", "y.npy: y has 19999 rows but the graph has 20000 nodes"),
        ("x rows are not the nodes", "x.npy: x has 19999 rows but y and the masks have 20000"),
        ("truncated x.npy", "x.npy: truncated"),
    ],
)
def test_bad_input_out_of_core_is_one_line_and_leaves_nothing(tmp_path, sources, capsys, fault, said):
    bad = broken_dir(tmp_path, sources, fault)
    code, stdout, stderr = run(capsys, *OUT_OF_CORE, "--dataset", str(bad), "--out", str(tmp_path / "parts"))
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and said in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # no output, no scratch


def test_a_full_disk_during_the_build_is_one_line_and_leaves_nothing(tmp_path, sources, capsys, monkeypatch):
    calls = []

    def append(self, values):
        calls.append(self.path.name)
        if len(calls) > 3:  # a few pieces in: the device fills up
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(NpyAppender, "append", append)
    out = str(tmp_path / "parts")
    code, stdout, stderr = run(capsys, *OUT_OF_CORE, "--dataset", str(sources["dir"]), "--out", out)
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"distgnn partition: error: no space left on the device of {tmp_path}")
    assert "out of core it needs about" in stderr and len(stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_loaded_graph_is_its_own_symmetric_structure(tmp_path, sources):
    # Why the command's out-of-core path writes KaMinPar's input straight from the loaded CSR
    # (symmetric=True): the loaders' normalisation already gives what symmetric_csr builds.
    pytest.importorskip("kaminpar")
    graph = load_graph(str(sources["npz"]), progress=False, csr=CsrOnDisk(tmp_path / "csr", TINY))
    xadj, adjncy = symmetric_csr(graph)
    np.testing.assert_array_equal(xadj, graph.indptr)
    np.testing.assert_array_equal(adjncy, graph.indices)
    kw = {"method": "kaminpar", "seed": 5, "memory_bytes": TINY, "scratch": tmp_path, "threads": 1}
    reused = bounded_parts(graph, 4, symmetric=True, **kw)
    np.testing.assert_array_equal(reused, bounded_parts(graph, 4, symmetric=False, **kw))


def test_training_on_either_directory_gives_the_same_losses(tmp_path, sources, one_thread):
    import distgnn

    spec = str(sources["npz"])
    kw = {"method": "random", "seed": 2, "progress": False}
    partition_graph(load_graph(spec, progress=False), 1, tmp_path / "memory", **kw)
    graph = load_graph(spec, progress=False, csr=CsrOnDisk(tmp_path / "csr", TINY))
    partition_graph(graph, 1, tmp_path / "bounded", memory=plan("random"), scratch=tmp_path, **kw)
    losses = []
    for name in ("memory", "bounded"):
        cfg = distgnn.TrainConfig.from_flat(
            partitions=str(tmp_path / name), epochs=3, hidden=16, seed=1, progress=False
        )
        losses.append([r["loss"] for r in distgnn.fit(cfg).history])
    assert losses[0] == losses[1] and len(set(losses[0])) == 3


def test_a_text_edge_list_out_of_core_under_its_budget_writes_the_in_memory_parts(tmp_path):
    pairs = np.random.default_rng(3).integers(0, 40_000, (400_000, 2))
    edges = tmp_path / "edges.txt"
    np.savetxt(edges, pairs, fmt="%d")
    args = ("--dataset", str(edges), "--parts", "4", "--method", "random", "--out")
    partition_process(*args, str(tmp_path / "memory"))
    # 85 MB: under the in-memory estimate (93 MB), over the out-of-core one (78 MB); both estimated from
    # the file's size, assuming 10 listed edges per node.
    proc = partition_process(*args, str(tmp_path / "bounded"), "--memory-budget", "85MB")
    assert peak_mb(proc.stdout, "85 MB") <= 85
    same_files(tmp_path / "memory", tmp_path / "bounded")


def test_a_streamed_synthetic_graph_out_of_core_writes_the_in_memory_parts(tmp_path):
    spec = "synthetic:nodes=20000,edges=400000,features=16,stream=true"
    args = ("--dataset", spec, "--parts", "4", "--method", "random", "--out")
    partition_process(*args, str(tmp_path / "memory"))
    # Written to a graph directory a chunk at a time, then read mapped: 78 MB out of core, 96 in memory.
    proc = partition_process(*args, str(tmp_path / "bounded"), "--memory-budget", "85MB")
    assert peak_mb(proc.stdout, "85 MB") <= 85
    same_files(tmp_path / "memory", tmp_path / "bounded")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
