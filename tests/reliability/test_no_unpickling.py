"""No pickle for data, checked by behaviour. test_security.py scans the package for unsafe call names
(``np.load`` without ``allow_pickle=False``, ...), which ``from torch import load`` would slip past; here
every loader a user can point at a file is handed a file that runs code when unpickled (a pickle whose
``__reduce__`` touches a sentinel file). Each must refuse it with one clear line (a DistGNNError, or the
CLI's one stderr line), and the sentinel must never appear. The same flows on the untampered files
succeed, and the payloads are shown to run their code when something does unpickle them.

Loaders: graph sources of ``distgnn partition --dataset`` (.npz, edge list, OGB directory) and the ``.npy``
features/labels of ``load_edgelist``; partition directories (``info --verify``, ``profile predict``,
``train``, ``load_part``), also with the checksum rewritten so that the refusal is the unpickling step's;
checkpoints (``train --resume``, ``load_rank_state``); network, profile and sweep JSON files; the
``--metrics-out`` file a resume cuts back.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from guard_helpers import BIN, job_env, tiny_parts

from distgnn.checkpoint import files as ckpt
from distgnn.checkpoint.sets import resume_set
from distgnn.comm.layout import ProcessLayout
from distgnn.data import load_edgelist, load_graph, save_graph_dir, save_npz, synthetic_graph
from distgnn.errors import DistGNNError
from distgnn.partitioning import load_part
from distgnn.profile.network import Network
from distgnn.profile.network_file import save_network

FAST = ["--kernel", "reference", "--no-progress", "--seed", "3", "--dropout", "0"]
TIMEOUT = 120  # per CLI subprocess; each takes well under 10 s
NOT_UTF8 = "'utf-8' codec can't decode byte 0x80 in position 0: invalid start byte"  # a binary pickle as text
OBJECT_NPY = "Object arrays cannot be loaded when allow_pickle=False"
PICKLE_NPY = (
    "This file contains pickled (object) data. If you trust the file you can load it unsafely using the "
    "`allow_pickle=` keyword argument or `pickle.load()`."
)
pytestmark = pytest.mark.usefixtures("one_thread")


class Touch:
    """Unpickling it calls ``Path.touch(sentinel)``: code that runs only if a loader unpickles."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def bare_pickle(sentinel: Path) -> bytes:
    return pickle.dumps(Touch(sentinel))


def object_npy(sentinel: Path) -> bytes:
    """A real ``.npy`` file of an object array: its body is a pickle."""
    buf = io.BytesIO()
    np.save(buf, np.array([Touch(sentinel)], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.fixture
def sentinel(tmp_path) -> Path:
    return tmp_path / "pwned"


def cli(*args: object) -> subprocess.CompletedProcess:
    """``distgnn ARGS`` in a subprocess."""
    cmd = [str(BIN / "distgnn"), *map(str, args)]
    return subprocess.run(cmd, env=job_env(), capture_output=True, text=True, timeout=TIMEOUT)


def one_error(proc: subprocess.CompletedProcess | tuple[int, str, str], command: str) -> str:
    """The message of a CLI run that failed with exit 2 and exactly one stderr line."""
    code, err = (proc.returncode, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc[::2]
    assert code == 2, err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1 and err.endswith("\n"), err
    prefix = f"distgnn {command}: error: "
    assert lines[0].startswith(prefix), err
    return lines[0].removeprefix(prefix)


RAN = "the payload ran: the loader unpickled it"


def refused(call, sentinel: Path) -> str:
    """The one-line DistGNNError ``call()`` raises (checked after the sentinel, whatever ``call`` did)."""
    try:
        with pytest.raises(DistGNNError) as info:
            call()
    finally:
        assert not sentinel.exists(), RAN
    assert "\n" not in str(info.value)
    return str(info.value)


def in_process(run_cli, argv: list, sentinel: Path) -> tuple[int, str, str]:
    """``run_cli(argv)``, the sentinel checked whatever it did (an unpickled payload may also crash it)."""
    try:
        return run_cli([str(a) for a in argv])
    finally:
        assert not sentinel.exists(), RAN


# -- fixtures: valid files of every kind, made with the project's own writers ----------------------------


def write_gz(path: Path, rows: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savetxt(buf, rows, fmt=fmt, delimiter=",")
    path.write_bytes(gzip.compress(buf.getvalue()))


@pytest.fixture(scope="module")
def world(tmp_path_factory, run_cli, one_thread_module):
    """Graph sources (.npz, edge list with .npy features and labels, OGB directory), a 1-part partition
    directory, a 4-epoch run on it with checkpoints at epochs 2 and 4, its metrics and its profile, and a
    calibrated network file."""
    root = tmp_path_factory.mktemp("nopickle")
    graph = synthetic_graph(num_nodes=60, num_edges=240, num_features=4, num_classes=3, seed=1)
    save_npz(graph, root / "g.npz")
    src, dst = graph.edges()
    (root / "edges.txt").write_text("".join(f"{s} {d}\n" for s, d in zip(src, dst, strict=True)))
    np.save(root / "feat.npy", graph.x, allow_pickle=False)
    np.save(root / "labels.npy", graph.y, allow_pickle=False)
    ogb = root / "ogb"
    write_gz(ogb / "raw" / "edge.csv.gz", np.stack([src, dst], axis=1), "%d")
    write_gz(ogb / "raw" / "node-label.csv.gz", graph.y.reshape(-1, 1), "%d")
    write_gz(ogb / "raw" / "node-feat.csv.gz", graph.x, "%.6f")
    for name, mask in (("train", graph.train_mask), ("valid", graph.val_mask), ("test", graph.test_mask)):
        write_gz(ogb / "split" / "s" / f"{name}.csv.gz", np.flatnonzero(mask).reshape(-1, 1), "%d")
    parts = tiny_parts(root, 1)
    run = ["--partitions", parts, *FAST, "--epochs", "4", "--checkpoint-dir", root / "ckpt"]
    run += ["--checkpoint-every", "2", "--metrics-out", root / "m.jsonl", "--profile-out", root / "prof.json"]
    code, _, err = run_cli(["train", *map(str, run)])
    assert code == 0, err
    assert ckpt.complete_epochs(root / "ckpt") == [4, 2]
    save_network(root / "net.json", Network(1e9, 1e-5, "test"))
    return {"root": root, "parts": parts, "ckpt": root / "ckpt"}


@pytest.fixture(scope="module")
def one_thread_module():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_payloads_run_code_when_unpickled(world, tmp_path, sentinel):
    """Without this, a loader could pass by accident (a payload that does nothing)."""
    pickle.loads(bare_pickle(sentinel))
    assert sentinel.exists()
    sentinel.unlink()
    np.load(io.BytesIO(object_npy(sentinel)), allow_pickle=True)
    assert sentinel.exists()
    sentinel.unlink()
    npz = tampered_npz(world, tmp_path, sentinel)
    with np.load(npz, allow_pickle=True) as data:
        data["y"]
    assert sentinel.exists()
    sentinel.unlink()
    root = tampered_checkpoint(world, tmp_path / "ck", sentinel, manifest=True)
    torch.load(ckpt.rank_file(root, 4, 0), weights_only=False)
    assert sentinel.exists()
    sentinel.unlink()
    (tmp_path / "p.pkl").write_bytes(bare_pickle(sentinel))  # also in another process (what the CLI is)
    code = f"import pickle; pickle.load(open({str(tmp_path / 'p.pkl')!r}, 'rb'))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)
    assert sentinel.exists()


# -- graph sources: `distgnn partition --dataset SRC` --------------------------------------------------


def tampered_npz(world: dict, tmp_path: Path, sentinel: Path) -> Path:
    """The valid .npz with its labels replaced by an object array (np.savez pickles it)."""
    with np.load(world["root"] / "g.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["y"] = np.array([Touch(sentinel)] * len(arrays["y"]), dtype=object)
    path = tmp_path / "g.npz"
    np.savez(path, **arrays)
    return path


def npz_with_pickle_member(world: dict, tmp_path: Path, sentinel: Path) -> Path:
    """The valid .npz with its ``y.npy`` member replaced by a bare pickle (no .npy header)."""
    path = tmp_path / "g.npz"
    with zipfile.ZipFile(world["root"] / "g.npz") as old, zipfile.ZipFile(path, "w") as new:
        for name in old.namelist():
            new.writestr(name, bare_pickle(sentinel) if name == "y.npy" else old.read(name))
    return path


def pickle_as(name: str):
    def make(world: dict, tmp_path: Path, sentinel: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(bare_pickle(sentinel))
        return path

    return make


def ogb_with_pickled_edges(world: dict, tmp_path: Path, sentinel: Path) -> Path:
    ogb = shutil.copytree(world["root"] / "ogb", tmp_path / "ogb")
    (ogb / "raw" / "edge.csv.gz").write_bytes(gzip.compress(bare_pickle(sentinel)))
    return ogb


SOURCES = {  # case -> (make the source, the error line's message or its start)
    "npz: object array member": (
        tampered_npz, f"g.npz: cannot read arrays without pickle ({OBJECT_NPY})"
    ),
    "npz: bare pickle member": (  # numpy hands a member without a .npy header back as bytes
        npz_with_pickle_member, "g.npz: y must be 1-D (one class per node), got shape ()"
    ),
    "npz: the file is a pickle": (pickle_as("g.npz"), "g.npz: not a .npz archive"),
    "edge list: the file is a pickle": (
        pickle_as("edges.txt"), "edges.txt:1: expected two integer node IDs, got '"
    ),
    "edge list: a .pkl file": (pickle_as("graph.pkl"), "graph.pkl:1: expected two integer node IDs, got '"),
    "OGB directory: edge.csv.gz is a pickle": (ogb_with_pickled_edges, f"edge.csv.gz: {NOT_UTF8}"),
}  # fmt: skip


@pytest.mark.parametrize("case", SOURCES)
def test_partition_refuses_a_pickled_graph_source(world, tmp_path, sentinel, case):
    make, expected = SOURCES[case]
    source = make(world, tmp_path, sentinel)
    proc = cli("partition", "--dataset", source, "--parts", "1", "--out", tmp_path / "out", "--no-progress")
    assert not sentinel.exists(), RAN
    assert one_error(proc, "partition").startswith(expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("body", [object_npy, bare_pickle], ids=["object array", "bare pickle"])
def test_partition_refuses_a_pickled_graph_directory_file(world, tmp_path, sentinel, body):
    graph_dir = tmp_path / "gdir"
    save_graph_dir(load_graph(str(world["root"] / "g.npz"), progress=False), graph_dir)
    (graph_dir / "y.npy").write_bytes(body(sentinel))
    proc = cli(
        "partition", "--dataset", graph_dir, "--parts", "1", "--out", tmp_path / "out", "--no-progress"
    )
    assert not sentinel.exists(), RAN
    assert one_error(proc, "partition").startswith(f"{graph_dir / 'y.npy'}: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source", ["g.npz", "edges.txt", "ogb"])
def test_partition_reads_the_untampered_sources(world, tmp_path, source):
    out = tmp_path / "out"
    proc = cli(
        "partition", "--dataset", world["root"] / source, "--parts", "1", "--out", out, "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote 1 parts of {Path(source).stem} (60 nodes, ")
    assert (out / "meta.json").is_file()


@pytest.mark.parametrize("which", ["features", "labels"])
@pytest.mark.parametrize(("body", "why"), [(object_npy, OBJECT_NPY), (bare_pickle, PICKLE_NPY)])
def test_edge_list_npy_side_files_refuse_pickles(world, tmp_path, sentinel, which, body, why):
    edges = world["root"] / "edges.txt"
    good = world["root"] / ("feat.npy" if which == "features" else "labels.npy")
    graph = load_edgelist(edges, **{which: good})
    assert graph.num_nodes == 60  # the untampered side file loads
    bad = tmp_path / "side.npy"
    bad.write_bytes(body(sentinel))
    message = refused(lambda: load_edgelist(edges, **{which: bad}), sentinel)
    assert message == f"side.npy: not a readable .npy array ({why})"


# -- partition directories: meta.json + one .npy per array, sha256 each --------------------------------


def tampered_parts(world: dict, tmp_path: Path, name: str, body: bytes, *, rechecksum: bool) -> Path:
    """A copy of the partition with ``part-0/{name}.npy`` replaced by ``body``; with ``rechecksum`` its
    sha256 in meta.json is rewritten to match, so only the unpickling step can refuse it."""
    out = shutil.copytree(world["parts"], tmp_path / "parts")
    rel = f"part-0/{name}.npy"
    (out / rel).write_bytes(body)
    if rechecksum:
        meta = json.loads((out / "meta.json").read_text())
        meta["checksums"][rel] = hashlib.sha256(body).hexdigest()
        (out / "meta.json").write_text(json.dumps(meta))
    return out


MMAP_OBJECT = "Array can't be memory-mapped: Python objects in dtype."
PART_CASES = {  # case -> (array replaced, payload, checksum rewritten, the error message's tail)
    "object .npy": ("x", object_npy, True, MMAP_OBJECT),
    "bare pickle": ("x", bare_pickle, True, PICKLE_NPY),
    "object .npy, checksum not rewritten": ("x", object_npy, False, None),
}


@pytest.mark.parametrize("case", PART_CASES)
def test_info_verify_refuses_a_pickled_part_array(world, tmp_path, sentinel, case):
    name, body, rechecksum, why = PART_CASES[case]
    parts = tampered_parts(world, tmp_path, name, body(sentinel), rechecksum=rechecksum)
    path = parts / "part-0" / f"{name}.npy"
    proc = cli("info", parts, "--verify")
    assert not sentinel.exists(), RAN
    message = one_error(proc, "info")
    if why is None:
        assert message == f"checksum mismatch for {path}: the file is corrupt or was modified"
    else:
        assert message == f"cannot read {path}: {why}"


def test_info_verify_reads_the_untampered_partition(world):
    proc = cli("info", world["parts"], "--verify")
    assert proc.returncode == 0, proc.stderr
    assert "checksums   OK (14 files)" in proc.stdout


@pytest.mark.parametrize(("body", "why"), [(object_npy, OBJECT_NPY), (bare_pickle, PICKLE_NPY)])
@pytest.mark.parametrize("name", ["x", "send_offsets"])
def test_load_part_without_mmap_refuses_a_pickled_array(world, tmp_path, sentinel, body, why, name):
    assert load_part(world["parts"], 0, mmap=False).x.shape == (200, 8)  # the untampered partition
    parts = tampered_parts(world, tmp_path, name, body(sentinel), rechecksum=True)
    message = refused(lambda: load_part(parts, 0, mmap=False), sentinel)
    assert message == f"cannot read {parts / 'part-0' / f'{name}.npy'}: {why}"


TRAIN_ONE_EPOCH = ["train", "--partitions", "{parts}", *FAST, "--epochs", "1"]


@pytest.mark.parametrize(("body", "why"), [(object_npy, OBJECT_NPY), (bare_pickle, PICKLE_NPY)])
@pytest.mark.parametrize("argv", [TRAIN_ONE_EPOCH, ["profile", "predict", "--partitions", "{parts}"]])
def test_train_and_predict_refuse_a_pickled_offsets_array(
    world, run_cli, tmp_path, sentinel, body, why, argv
):
    # send_offsets is also read on its own, before training, by the halo-count preflight (not memory-mapped)
    parts = tampered_parts(world, tmp_path, "send_offsets", body(sentinel), rechecksum=True)
    args = [a.format(parts=parts) for a in argv]
    assert run_cli([a.format(parts=world["parts"]) for a in argv])[0] == 0  # the untampered partition
    message = one_error(in_process(run_cli, args, sentinel), argv[0])
    message = re.sub(r"^rank 0 on \S+: ", "", message)  # train names the rank that read the file
    assert message == f"cannot read {parts / 'part-0' / 'send_offsets.npy'}: {why}"


# -- checkpoints: torch.save'd dicts, loaded with weights_only=True --------------------------------------


def tampered_checkpoint(world: dict, root: Path, sentinel: Path, *, manifest: bool) -> Path:
    """A copy of the checkpoint directory whose newest set (epoch 4) holds an object that runs code when
    unpickled, beside its real tensors; with ``manifest`` the set's manifest is rewritten to match."""
    shutil.copytree(world["ckpt"], root)
    path = ckpt.rank_file(root, 4, 0)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["model"]["extra"] = Touch(sentinel)
    torch.save(state, path)
    if manifest:
        meta = ckpt.read_manifest(root, 4)
        meta["files"][path.name] = {
            "size": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        (ckpt.epoch_dir(root, 4) / ckpt.MANIFEST).write_text(json.dumps(meta))
    return root


REFUSED_CKPT = "not a file of tensors and plain containers (torch.load with weights_only=True refused "


def resume(world: dict, tmp_path: Path, ckpt_dir: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``distgnn train --resume`` to epoch 6; (the process, its metrics lines), the metrics file starting
    as the original run's."""
    metrics = shutil.copy(world["root"] / "m.jsonl", tmp_path / "m.jsonl")
    run = ["--partitions", world["parts"], *FAST, "--epochs", "6", "--checkpoint-dir", ckpt_dir]
    proc = cli("train", *run, "--checkpoint-every", "2", "--metrics-out", metrics, "--resume")
    return proc, Path(metrics).read_text().splitlines()


def test_train_resume_refuses_a_pickled_checkpoint_and_falls_back(world, tmp_path, sentinel):
    root = tampered_checkpoint(world, tmp_path / "ck", sentinel, manifest=True)
    proc, lines = resume(world, tmp_path, root)
    assert not sentinel.exists(), RAN
    assert proc.returncode == 0, proc.stderr
    path = ckpt.rank_file(root, 4, 0)
    (line,) = proc.stderr.rstrip("\n").split("\n")
    assert line.startswith(f"distgnn: warning: checkpoint file {path} cannot be used (cannot load checkpoint "
                           f"{path}: {REFUSED_CKPT}")  # fmt: skip
    assert line.endswith("); falling back to an older checkpoint")
    original = (world["root"] / "m.jsonl").read_text().splitlines()
    # resumed from epoch 2: epochs 1-2 kept as written, epoch 3 run again (its line's timings differ)
    assert len(lines) == 6 and lines[:2] == original[:2] and lines[2] != original[2]


def test_train_resume_reads_the_untampered_checkpoint(world, tmp_path):
    proc, lines = resume(world, tmp_path, shutil.copytree(world["ckpt"], tmp_path / "ck"))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    original = (world["root"] / "m.jsonl").read_text().splitlines()
    assert len(lines) == 6 and lines[:4] == original  # resumed from epoch 4


def test_load_rank_state_refuses_a_pickled_checkpoint(world, tmp_path, sentinel):
    root = tampered_checkpoint(world, tmp_path / "ck", sentinel, manifest=True)
    assert ckpt.load_rank_state(root, 2, 0)["epoch"] == 2  # the untampered set beside it
    path = ckpt.rank_file(root, 4, 0)
    assert refused(lambda: ckpt.load_rank_state(root, 4, 0), sentinel).startswith(
        f"cannot load checkpoint {path}: {REFUSED_CKPT}"
    )
    path.write_bytes(pickle.dumps({"w": Touch(sentinel)}, protocol=2))  # a bare pickle, not torch's zip
    assert refused(lambda: ckpt.load_rank_state(root, 4, 0), sentinel).startswith(
        f"cannot load checkpoint {path}: {REFUSED_CKPT}"
    )


def test_a_pickled_checkpoint_with_its_old_manifest_fails_its_check(world, tmp_path, capsys, sentinel):
    root = tampered_checkpoint(world, tmp_path / "ck", sentinel, manifest=False)
    try:
        epoch, state = resume_set(ProcessLayout.single("cpu"), str(root))
    finally:
        assert not sentinel.exists(), RAN
    assert epoch == 2 and state["epoch"] == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"distgnn: warning: checkpoint file {ckpt.rank_file(root, 4, 0)} is ")
    assert line.endswith("; falling back to an older checkpoint")


# -- JSON files: network, profile, sweep, and the metrics file a resume cuts back -------------------------


def test_profile_json_files_refuse_pickles(world, run_cli, tmp_path, sentinel):
    parts, net, prof = world["parts"], world["root"] / "net.json", world["root"] / "prof.json"
    predict = ["profile", "predict", "--partitions", str(parts)]
    code, out, err = run_cli([*predict, "--network", str(net), "--from-run", str(prof)])  # untampered
    assert code == 0 and "epoch" in out, err
    evil = tmp_path / "evil.json"
    evil.write_bytes(bare_pickle(sentinel))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_bytes(bare_pickle(sentinel))
    for argv, path in [
        ([*predict, "--network", str(evil)], evil),
        ([*predict, "--network", str(net), "--from-run", str(evil)], evil),
        (["profile", "report", str(evil)], evil),
        (["profile", "report", str(sweep)], sweep / "sweep.json"),
    ]:
        assert (
            one_error(in_process(run_cli, argv, sentinel), "profile")
            == f"{path} is not strict JSON: {NOT_UTF8}"
        )


def test_a_pickled_metrics_file_stops_a_resume_with_one_line(world, run_cli, tmp_path, sentinel):
    metrics = tmp_path / "m.jsonl"
    metrics.write_bytes(bare_pickle(sentinel))
    root = shutil.copytree(world["ckpt"], tmp_path / "ck")
    run = ["train", "--partitions", world["parts"], *FAST, "--epochs", "6", "--checkpoint-dir", root]
    message = one_error(in_process(run_cli, [*run, "--metrics-out", metrics, "--resume"], sentinel), "train")
    assert message == f"--metrics-out {metrics} is not a distgnn metrics file: UnicodeDecodeError: {NOT_UTF8}"
