# ruff: noqa: E501  (the table holds whole error lines: one case per entry reads better than split strings)
"""The bad-input sweep: every case across `distgnn partition`, `info`, `train` and `profile` exits
non-zero with one clear line, writes nothing, and shows no traceback. One table, so the sweep stays
visible; most cases fail before any process group exists and run in this process (``run_cli``).

Cases that need several ranks (ranks pointed at different partitions, parts mixed up between
partitionings) are the last table: they are agreed on by all ranks before the first training collective.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from guard_helpers import tiny_parts

from distgnn.data.synthetic import synthetic_graph
from distgnn.runtime.preflight import partition_identity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dist"))
from helpers import run_ranks  # noqa: E402

FAST = ["--kernel", "reference", "--no-progress", "--epochs", "2"]
pytestmark = pytest.mark.usefixtures("one_thread")


# -- ways to break a partition directory (a copy; checksums fixed where the case says so) ---------------


def write_array(root: Path, part: int, name: str, array: np.ndarray, *, fix_checksum: bool) -> None:
    rel = f"part-{part}/{name}.npy"
    np.save(root / rel, array, allow_pickle=False)
    if fix_checksum:
        meta = json.loads((root / "meta.json").read_text())
        meta["checksums"][rel] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        (root / "meta.json").write_text(json.dumps(meta))


def edit_meta(root: Path, **changes) -> None:
    meta = json.loads((root / "meta.json").read_text())
    meta.update(changes)
    (root / "meta.json").write_text(json.dumps(meta))


def truncate(root: Path, fix_checksum: bool) -> None:
    path = root / "part-0" / "indices.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    if fix_checksum:
        meta = json.loads((root / "meta.json").read_text())
        meta["checksums"]["part-0/indices.npy"] = hashlib.sha256(path.read_bytes()).hexdigest()
        (root / "meta.json").write_text(json.dumps(meta))


def swap_x_y(root: Path) -> None:  # swapped files, checksums swapped with them: only the dtype tells
    d = root / "part-0"
    (d / "x.npy").rename(d / "tmp.npy")
    (d / "y.npy").rename(d / "x.npy")
    (d / "tmp.npy").rename(d / "y.npy")
    meta = json.loads((root / "meta.json").read_text())
    c = meta["checksums"]
    c["part-0/x.npy"], c["part-0/y.npy"] = c["part-0/y.npy"], c["part-0/x.npy"]
    (root / "meta.json").write_text(json.dumps(meta))


def modify_byte(root: Path) -> None:
    path = root / "part-0" / "x.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def array(root: Path, name: str) -> np.ndarray:
    return np.load(root / "part-0" / f"{name}.npy", allow_pickle=False)


BREAK = {
    "truncated": lambda r: truncate(r, fix_checksum=False),
    "truncated_rechecksummed": lambda r: truncate(r, fix_checksum=True),
    "swapped": swap_x_y,
    "modified": modify_byte,
    "version": lambda r: edit_meta(r, version=2),
    "escape": lambda r: edit_meta(r, checksums={"../../../etc/passwd": "0" * 64}),
    "ids": lambda r: write_array(r, 0, "indices", array(r, "indices") + 10**6, fix_checksum=True),
    "nan": lambda r: write_array(
        r, 0, "x", np.where(array(r, "x") > 1, np.nan, array(r, "x")).astype(np.float32), fix_checksum=True
    ),  # fmt: skip
    "no_train": lambda r: write_array(
        r, 0, "train_mask", np.zeros_like(array(r, "train_mask")), fix_checksum=True
    ),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, run_cli):
    """Clean 1- and 2-part directories, a broken copy of the 1-part one per BREAK entry, a checkpoint
    of a 1-epoch GCN run, and a 1-part directory of another graph (another feature count)."""
    root = tmp_path_factory.mktemp("bad")
    w = {"p1": tiny_parts(root, 1), "p2": tiny_parts(root, 2)}
    for name, breaker in BREAK.items():
        w[name] = root / f"broken-{name}"
        shutil.copytree(w["p1"], w[name])
        breaker(w[name])
    other = synthetic_graph(num_nodes=120, num_edges=600, num_features=5, num_classes=3, seed=9)
    from distgnn.partitioning import partition_graph

    partition_graph(other, 1, root / "other", progress=False)
    w["other"] = root / "other"
    w["p1b"] = tiny_parts(root, 1, seed=6)  # another graph of the same sizes: the model fits either
    for name in ("p1", "p1b", "other"):
        w[f"{name}_sha"] = partition_identity(w[name])["sha256"][:12]
    w["ckpt"] = root / "ckpt"
    code, _, err = run_cli(
        [
            "train",
            "--partitions",
            str(w["p1"]),
            *FAST,
            "--checkpoint-dir",
            str(w["ckpt"]),
            "--checkpoint-every",
            "1",
        ]
    )
    assert code == 0, err
    np.savez(root / "nan.npz", edge_src=np.array([0, 1]), edge_dst=np.array([1, 2]),
             x=np.full((3, 2), np.nan, np.float32), y=np.zeros(3, np.int64), train_mask=np.ones(3, bool),
             val_mask=np.zeros(3, bool), test_mask=np.zeros(3, bool))  # fmt: skip
    np.savez(root / "ids.npz", edge_src=np.array([0, 7]), edge_dst=np.array([1, 2]),
             x=np.zeros((3, 2), np.float32), y=np.zeros(3, np.int64), train_mask=np.ones(3, bool),
             val_mask=np.zeros(3, bool), test_mask=np.zeros(3, bool))  # fmt: skip
    w["root"] = root
    (root / "a-file").write_text("")
    return w


def T(*args: str) -> tuple[str, ...]:
    return ("train", "--partitions", *args)


# (id, argv with {name} placeholders for world paths and {out} for the output directory, expected line)
CASES = [
    # -- distgnn partition
    (
        "partition: missing source",
        ["partition", "--dataset", "{root}/nope.npz", "--parts", "2", "--out", "{out}/p"],
        "distgnn partition: error: no such file or directory: {root}/nope.npz",
    ),
    (
        "partition: NaN features",
        ["partition", "--dataset", "{root}/nan.npz", "--parts", "2", "--out", "{out}/p"],
        "distgnn partition: error: nan.npz: x contain NaN or Inf",
    ),
    (
        "partition: edge id out of range",
        ["partition", "--dataset", "{root}/ids.npz", "--parts", "2", "--out", "{out}/p"],
        "distgnn partition: error: ids.npz: edge endpoint 7 is outside the node range [0, 3)",
    ),
    (
        "partition: zero parts",
        ["partition", "--dataset", "synthetic:nodes=50,edges=200", "--parts", "0", "--out", "{out}/p"],
        "distgnn partition: error: --parts must be at least 1, got 0",
    ),
    # -- distgnn info
    (
        "info: unknown format version",
        ["info", "{version}"],
        "distgnn info: error: partition format version 2 is not supported (this distgnn reads version 1)",
    ),
    (
        "info: meta.json path leaves the directory",
        ["info", "{escape}"],
        "distgnn info: error: {escape}/meta.json names a file outside the partition directory: '../../../etc/passwd' (expected part-<p>/<array>.npy)",
    ),
    (
        "info: truncated .npy",
        ["info", "{truncated}", "--verify"],
        "distgnn info: error: checksum mismatch for {truncated}/part-0/indices.npy: the file is corrupt or was modified",
    ),
    (
        "info: checksum mismatch",
        ["info", "{modified}", "--verify"],
        "distgnn info: error: checksum mismatch for {modified}/part-0/x.npy: the file is corrupt or was modified",
    ),
    # -- distgnn train
    (
        "train: wrong world size",
        [*T("{p2}"), *FAST],
        "distgnn train: error: partition directory {p2} has 2 parts but the job has 1 process; run with --nproc 2 (or torchrun --nproc_per_node 2)",
    ),
    (
        "train: truncated .npy",
        [*T("{truncated}"), *FAST],
        "distgnn train: error: checksum mismatch for {truncated}/part-0/indices.npy: the file is corrupt or was modified",
    ),
    (
        "train: truncated .npy, checksum rewritten",
        [*T("{truncated_rechecksummed}"), *FAST],
        "distgnn train: error: cannot read {truncated_rechecksummed}/part-0/indices.npy: mmap length is greater than file size",
    ),
    (
        "train: swapped .npy files",
        [*T("{swapped}"), *FAST],
        "distgnn train: error: {swapped}/part-0/x.npy has dtype int64, expected float32",
    ),
    (
        "train: checksum mismatch",
        [*T("{modified}"), *FAST],
        "distgnn train: error: checksum mismatch for {modified}/part-0/x.npy: the file is corrupt or was modified",
    ),
    (
        "train: unknown format version",
        [*T("{version}"), *FAST],
        "distgnn train: error: partition format version 2 is not supported (this distgnn reads version 1)",
    ),
    (
        "train: meta.json path leaves the directory",
        [*T("{escape}"), *FAST],
        "distgnn train: error: {escape}/meta.json names a file outside the partition directory: '../../../etc/passwd' (expected part-<p>/<array>.npy)",
    ),
    (
        "train: out-of-range node ids",
        [*T("{ids}"), *FAST],
        "distgnn train: error: {ids}/part-0/indices.npy has values outside [0, 200): 1000000..1000199",
    ),
    (
        "train: NaN features",
        [*T("{nan}"), *FAST],
        "distgnn train: error: {nan}/part-0/x.npy has non-finite features (NaN or Inf)",
    ),
    (
        "train: no training nodes",
        [*T("{no_train}"), *FAST],
        "distgnn train: error: the graph has no training nodes (train_mask is empty on every rank)",
    ),
    (
        "train: layers 0",
        [*T("{p1}"), *FAST, "--layers", "0"],
        "distgnn train: error: layers must be >= 1, got 0",
    ),
    (
        "train: hidden 1e9",
        [*T("{p1}"), *FAST, "--hidden", "1000000000"],
        "distgnn train: error: hidden must be <= 65536, got 1000000000",
    ),
    (
        "train: epochs -1",
        [*T("{p1}"), "--kernel", "reference", "--epochs", "-1"],
        "distgnn train: error: epochs must be >= 1, got -1",
    ),
    (
        "train: unknown model",
        [*T("{p1}"), *FAST, "--model", "mlp"],
        "distgnn train: error: unknown model 'mlp'; choose one of gcn, sage, gat, deepgcn, or give an import "
        "path module:function",
    ),
    (
        "train: unknown strategy",
        [*T("{p1}"), *FAST, "--strategy", "ring"],
        "distgnn train: error: argument --strategy: invalid choice: 'ring' (choose from 'graph', 'pipeline', 'hybrid')",
    ),
    (
        "train: resume from another model",
        [*T("{p1}"), *FAST, "--checkpoint-dir", "{ckpt}", "--resume", "--hidden", "8"],
        "distgnn train: error: checkpoint was written with different settings: hidden",
    ),
    (
        "train: resume from another graph",
        [*T("{other}"), *FAST, "--checkpoint-dir", "{ckpt}", "--resume"],
        "distgnn train: error: the checkpoint was trained on another partitioning: {p1} (content sha256 {p1_sha}), this job reads {other} (content sha256 {other_sha}); resume on the partitioning it was written on",
    ),
    (
        "train: resume from another partitioning of the same sizes",
        [*T("{p1b}"), *FAST, "--checkpoint-dir", "{ckpt}", "--resume"],
        "distgnn train: error: the checkpoint was trained on another partitioning: {p1} (content sha256 {p1_sha}), this job reads {p1b} (content sha256 {p1b_sha}); resume on the partitioning it was written on",
    ),
    (
        "train: checkpoint dir not writable",
        [*T("{p1}"), *FAST, "--checkpoint-dir", "{root}/a-file/ck", "--checkpoint-every", "1"],
        "distgnn train: error: checkpoint directory {root}/a-file/ck cannot be created: {root}/a-file is not a directory",
    ),
    (
        "train: metrics file not writable",
        [*T("{p1}"), *FAST, "--metrics-out", "{root}/a-file/m.jsonl"],
        "distgnn train: error: --metrics-out directory {root}/a-file cannot be created: {root}/a-file is not a directory",
    ),
    (
        "train: tensorboard dir not writable",
        [*T("{p1}"), *FAST, "--tensorboard", "{root}/a-file/tb"],
        "distgnn train: error: --tensorboard directory {root}/a-file/tb cannot be created: {root}/a-file is not a directory",
    ),
    # -- distgnn profile
    (
        "profile: meta.json path leaves the directory",
        ["profile", "predict", "--partitions", "{escape}"],
        "distgnn profile: error: {escape}/meta.json names a file outside the partition directory: '../../../etc/passwd' (expected part-<p>/<array>.npy)",
    ),
    (
        "profile: layers 0",
        ["profile", "predict", "--partitions", "{p1}", "--layers", "0"],
        "distgnn profile: error: layers must be >= 1, got 0",
    ),
]


@pytest.mark.parametrize("argv,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(world, run_cli, tmp_path, monkeypatch, argv, expected):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    out.mkdir()
    names = {k: str(v) for k, v in world.items()} | {"out": str(out)}
    args = [a.format(**names) for a in argv]
    code, stdout, err = run_cli(args)
    print(repr(err.strip().splitlines()[-1] if err.strip() else err))
    assert code == 2
    assert "Traceback" not in err
    assert err.endswith("\n") and err.strip().splitlines()[-1] == expected.format(**names)
    assert list(out.iterdir()) == []  # nothing written


# -- cases that need two ranks: agreed on before the first training collective ---------------------------


def cli_per_rank(rank: int, world_size: int, argvs: list[list[str]]) -> tuple[int, str]:
    """``distgnn ARGV[rank]`` in this rank, under the torchrun environment run_ranks sets."""
    import contextlib
    import io

    from distgnn.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argvs[rank])
    return code, err.getvalue()


def mixed_parts(world: dict, root: Path) -> Path:
    """The 2-part directory with part-1 taken from another partitioning (same meta.json everywhere)."""
    other = tiny_parts(root, 2, seed=6)
    mixed = root / "mixed"
    shutil.copytree(world["p2"], mixed)
    shutil.rmtree(mixed / "part-1")
    shutil.copytree(other / "part-1", mixed / "part-1")
    return mixed


@pytest.mark.timeout(150)
def test_ranks_on_different_or_mixed_partitions_stop_with_one_line(world, tmp_path):
    # Rank 0 reads one partition, rank 1 another of a different graph (same part count). Then both read
    # one meta.json, but part-1 comes from another run: its halo counts disagree with part-0's.
    other = tiny_parts(tmp_path, 2, seed=7)
    mixed = mixed_parts(world, tmp_path)
    argv = lambda d: ["train", "--partitions", str(d), *FAST]  # noqa: E731
    different = run_ranks(cli_per_rank, 2, [argv(world["p2"]), argv(other)], init=False, timeout=120)
    sha = lambda d: hashlib.sha256((d / "meta.json").read_bytes()).hexdigest()[:12]  # noqa: E731
    assert different == [
        (2, "distgnn train: error: the ranks read different partitions: "
            f"rank 0 read {world['p2']} (meta.json sha256 {sha(world['p2'])}); "
            f"rank 1 read {other} (meta.json sha256 {sha(other)}). Every rank must see the same meta.json "
            "(copy the whole partition's meta.json to every node)\n"),
        (2, ""),  # an error every rank agrees on is printed once per node (local rank 0)
    ]  # fmt: skip
    mixed_run = run_ranks(cli_per_rank, 2, [argv(mixed), argv(mixed)], init=False, timeout=120)
    assert mixed_run[1] == (2, "")
    assert mixed_run[0][0] == 2
    assert mixed_run[0][1].startswith("distgnn train: error: rank 0 on ")
    assert "halo rows from part 1, which would send" in mixed_run[0][1]
    assert mixed_run[0][1].endswith("the parts come from different partitionings (and 1 more rank(s))\n")


@pytest.mark.slow  # two 2-rank runs: about 28 s on 2 cores (the one-process rows are in the table)
@pytest.mark.timeout(150)
def test_resume_on_another_partitioning_stops_every_rank_with_one_line(world, tmp_path):
    # The same graph partitioned again another way (contiguous ranges, not METIS): same sizes, other
    # parts. The checkpoint of a 2-rank run on one must not resume on the other (its parameters fit).
    from distgnn.partitioning import partition_graph

    graph = synthetic_graph(num_nodes=200, num_edges=1200, num_features=8, num_classes=3, seed=5)
    repartitioned = tmp_path / "repartitioned"
    partition_graph(graph, 2, repartitioned, method="contiguous", progress=False)
    ckpt = tmp_path / "ckpt"
    argv = lambda d, *extra: ["train", "--partitions", str(d), *FAST, "--checkpoint-dir", str(ckpt), *extra]  # noqa: E731
    run = lambda d, *extra: run_ranks(cli_per_rank, 2, [argv(d, *extra)] * 2, init=False, timeout=120)  # noqa: E731
    assert run(world["p2"], "--checkpoint-every", "1") == [(0, ""), (0, "")]
    other = run(repartitioned, "--resume")
    old, new = partition_identity(world["p2"]), partition_identity(repartitioned)
    assert old["sha256"] != new["sha256"]
    assert other == [
        (2, "distgnn train: error: the checkpoint was trained on another partitioning: "
            f"{world['p2']} (content sha256 {old['sha256'][:12]}), this job reads {repartitioned} (content sha256 "
            f"{new['sha256'][:12]}); resume on the partitioning it was written on\n"),
        (2, ""),  # every rank stops; the line is printed once per node
    ]  # fmt: skip


def test_a_partitioning_written_again_identically_still_resumes(tmp_path):
    # The identity is the parts' content (meta.json's checksums), not meta.json's bytes, which hold
    # timings: partitioning the same graph the same way again must not orphan the checkpoints.
    first, again = tiny_parts(tmp_path, 2, name="first"), tiny_parts(tmp_path, 2, name="again")
    assert partition_identity(first)["sha256"] == partition_identity(again)["sha256"]
    from distgnn.checkpoint.files import partition_mismatch

    assert partition_mismatch(partition_identity(first), partition_identity(again)) is None
    assert partition_mismatch(None, partition_identity(again)) is None  # a checkpoint of an older distgnn
