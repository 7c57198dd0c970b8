"""launch/ray_train.py: Ray Train's TorchTrainer on a local Ray instance gives torchrun's losses."""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from launch_helpers import REPO, TRAIN_ARGS, launcher_env, losses, nproc_reference, tiny_parts
from proc_sockets import descendants, listening_sockets

SCRIPT = REPO / "launch" / "ray_train.py"
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs the ray extra (pip install 'distgnn[ray]')"
)


def loopback(addr: str) -> bool:
    """``ip:port`` on loopback (IPv4-mapped IPv6 included, as Ray's gRPC servers print)."""
    ip = ipaddress.ip_address(addr.rsplit(":", 1)[0])
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def run_watching_ports(cmd: list[str], cwd, timeout: float) -> tuple[int, str, dict[str, str]]:
    """Run ``cmd``; every 0.5 s, note what each process of its tree listens on: {ip:port: process name}."""
    job = subprocess.Popen(
        cmd, env=launcher_env(), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(job.stderr.read()), daemon=True)
    reader.start()
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:
        while job.poll() is None:
            assert time.monotonic() < deadline, f"no exit within {timeout} s"
            for pid in [job.pid, *descendants(job.pid)]:
                with contextlib.suppress(OSError):  # a process that ended meanwhile
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                    seen.update(dict.fromkeys(listening_sockets(pid), name))
            time.sleep(0.5)
    finally:
        job.kill()
        job.wait()
        reader.join(10)
    return job.returncode, "".join(err), seen


@needs_ray
@pytest.mark.slow  # about 60 s of CPU over 16 processes (Ray Train's control actors, 2 workers, torchrun)
@pytest.mark.timeout(600)
def test_two_ray_workers_match_torchrun(tmp_path, shared_tmp):
    # While the job runs, every listening socket of the launcher, the local instance (GCS, raylet,
    # agents) and the workers is noted: all on loopback, but torch's own store, which Ray Train's env://
    # set-up creates in rank 0 on every interface (torch's TCPStore default; see launch/README.md).
    parts, expected = nproc_reference(shared_tmp)  # the --nproc 2 run (shared with test_torchrun.py)
    metrics = tmp_path / "ray.jsonl"
    args = ["--workers", "2", "--", "--partitions", str(parts), *TRAIN_ARGS, "--metrics-out", str(metrics)]
    code, err, ports = run_watching_ports([sys.executable, str(SCRIPT), *args], tmp_path, 540)
    assert code == 0, err[-3000:]
    assert len(expected) == 3
    assert losses(metrics) == expected
    names = set(ports.values())
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::RayTrainWo") for n in names), ports
    outside = {a: n for a, n in ports.items() if not loopback(a)}
    assert len(outside) <= 1 and all(n.startswith("ray::RayTrainWo") for n in outside.values()), outside


def ray_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """The script's ``main()`` in this process (exit code, stderr): its error paths end before any Ray or
    worker process would start, so a fresh interpreter per case would only add torch's import time."""
    spec = importlib.util.spec_from_file_location("ray_train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
    code = module.main()
    return code, capsys.readouterr().err


def test_bad_sizes_fail_before_ray_starts(tmp_path, monkeypatch, capsys):
    parts = tiny_parts(tmp_path)
    code, err = ray_main(["--workers", "3", "--", "--partitions", str(parts)], monkeypatch, capsys)
    assert code == 2
    assert err == f"launch/ray_train.py: error: {parts} has 2 parts; 3 workers need 3 for --strategy graph\n"
    code, err = ray_main(["--workers", "2", "--", "--epochs", "2"], monkeypatch, capsys)
    assert code == 2
    assert (
        err
        == "launch/ray_train.py: error: --partitions is required (a directory every Ray worker can read)\n"
    )


def test_missing_ray_is_one_clear_line(tmp_path, monkeypatch, capsys):
    # Ray hidden from the interpreter: the launcher says which extra to install.
    parts = tiny_parts(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, err = ray_main(["--workers", "2", "--", "--partitions", str(parts)], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("launch/ray_train.py: error: the Ray launcher needs Ray Train (")
    assert err.endswith("is missing): pip install 'distgnn[ray]'\n")
