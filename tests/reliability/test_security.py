"""Security: nothing a user hands us is unpickled, the local rendezvous binds loopback, and partition
metadata cannot name files outside its directory."""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from guard_helpers import BIN, FAST, fault_time, job_env, pid_gone, tiny_parts
from proc_sockets import descendants, listening_sockets

from distgnn.errors import DistGNNError
from distgnn.partitioning import load_meta, load_part

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("distgnn", "partitioning", "kernels", "launch")  # what `pip install` ships, and launchers
# call -> (keyword, value) it must carry; None: never allowed at all
LOADS = {
    "np.load": ("allow_pickle", False),
    "numpy.load": ("allow_pickle", False),
    "torch.load": ("weights_only", True),
    "pickle.load": None,
    "pickle.loads": None,
    "pickle.Unpickler": None,
    "cloudpickle.load": None,
    "cloudpickle.loads": None,
    "dill.load": None,
    "dill.loads": None,
    "joblib.load": None,
    "marshal.load": None,
    "marshal.loads": None,
    "shelve.open": None,
    "pd.read_pickle": None,
    "pandas.read_pickle": None,
    "yaml.load": None,
    "yaml.unsafe_load": None,
    "torch.jit.load": None,
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return "?"


def unsafe_loads(source: str, filename: str) -> list[str]:
    """Every call in ``source`` that could unpickle: listed loaders without their safe keyword."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if name not in LOADS:
            continue
        rule = LOADS[name]
        ok = rule is not None and any(
            kw.arg == rule[0] and isinstance(kw.value, ast.Constant) and kw.value.value is rule[1]
            for kw in node.keywords
        )
        if not ok:
            found.append(f"{filename}:{node.lineno}: {name}")
    return found


def test_no_load_in_the_package_can_unpickle():
    files = sorted(p for d in PACKAGE_DIRS for p in (REPO / d).rglob("*.py"))
    assert len(files) > 50  # really scanned the package
    bad = [hit for f in files for hit in unsafe_loads(f.read_text(), str(f.relative_to(REPO)))]
    assert bad == []


@pytest.mark.parametrize(
    "source,hits",
    [
        ("np.load(p)", 1),
        ("np.load(p, allow_pickle=True)", 1),
        ("np.load(p, allow_pickle=False)", 0),
        ("torch.load(p, map_location='cpu')", 1),
        ("torch.load(p, weights_only=True)", 0),
        ("import pickle\npickle.loads(b)", 1),
        ("yaml.load(s)", 1),
    ],
)
def test_the_scan_catches_unsafe_loads(source, hits):
    assert len(unsafe_loads(source, "x.py")) == hits


OUTSIDE = "outside the partition directory"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return tiny_parts(tmp_path_factory.mktemp("sec"))


@pytest.mark.parametrize(
    "name,where",
    [("../../etc/passwd", OUTSIDE), ("/etc/passwd", OUTSIDE), ("part-0/../../x.npy", OUTSIDE),
     ("part-0/evil.npy", "unknown"), ("part-7/x.npy", "unknown")],
)  # fmt: skip
def test_meta_json_cannot_name_files_outside_its_directory(parts, tmp_path, name, where):
    bad = tmp_path / "bad"
    shutil.copytree(parts, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["checksums"][name] = "0" * 64
    (bad / "meta.json").write_text(json.dumps(meta))
    message = f"{bad / 'meta.json'} names a file {where}: {name!r} (expected part-<p>/<array>.npy)"
    with pytest.raises(DistGNNError) as info:
        load_meta(bad)
    assert str(info.value) == message
    with pytest.raises(DistGNNError):
        load_part(bad, 0)


def test_the_local_launcher_rendezvous_is_on_loopback(monkeypatch, tmp_path):
    from distgnn.commands import train as train_cmd
    from distgnn.commands.options import config_from_args
    from distgnn.runtime.launcher import launch_local

    seen = []
    monkeypatch.setattr("distgnn.runtime.launcher.resolve_partitions", lambda *a, **k: str(tmp_path))
    monkeypatch.setattr("distgnn.kernels.build.prebuild", lambda kernel: None)
    monkeypatch.setattr("distgnn.runtime.forkserver.start", lambda: "forkserver")
    monkeypatch.setattr(
        "torch.distributed.launcher.api.elastic_launch",
        lambda config, entrypoint: seen.append(config) or (lambda *argv: None),
    )
    parser = argparse.ArgumentParser()
    train_cmd.add_parser(parser.add_subparsers())
    launch_local(config_from_args(parser.parse_args(["train", "--nproc", "2"])))
    assert seen[0].rdzv_endpoint.split(":")[0] == "127.0.0.1"


def test_the_ray_dashboard_binds_loopback_by_default():
    source = (REPO / "launch" / "ray_train.py").read_text()
    assert 'p.add_argument("--dashboard-host", default="127.0.0.1"' in source


@pytest.mark.timeout(120)
def test_the_local_launcher_and_its_workers_listen_on_loopback_only(tmp_path):
    # Rank 1 stops itself (SIGSTOP) at epoch 2: while it is stopped, every store and gloo socket of the
    # job is open. None may listen on anything but 127.0.0.1 (torch's TCPStore default is [::]).
    parts, log = tiny_parts(tmp_path), tmp_path / "fault"
    cmd = [str(BIN / "distgnn"), "train", "--partitions", str(parts), "--nproc", "2", "--epochs", "8", *FAST,
           "--collective-timeout", "60"]  # fmt: skip
    env = job_env("1:2:stop", log)
    env.pop("GLOO_SOCKET_IFNAME", None)
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stopped = None
    try:
        deadline = time.monotonic() + 90
        while not (log.exists() and log.read_text().strip()) and job.poll() is None:
            assert time.monotonic() < deadline, "rank 1 never reached epoch 2"
            time.sleep(0.1)
        stopped, _ = fault_time(log)
        workers = [p for p in descendants(job.pid) if p != stopped] + [stopped]
        launcher, in_workers = listening_sockets(job.pid), [a for p in workers for a in listening_sockets(p)]
        assert launcher and in_workers, (launcher, in_workers)  # the agent's store; rank 0's store, gloo's
        assert {a.rsplit(":", 1)[0] for a in launcher + in_workers} == {"127.0.0.1"}, (launcher, in_workers)
    finally:
        if stopped is not None and not pid_gone(stopped):
            os.kill(stopped, signal.SIGKILL)  # the job ends at once: its peer sees the connection close
        try:
            job.communicate(timeout=60)
        finally:
            job.kill()
