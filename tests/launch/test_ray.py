"""launch/ray_train.py: Ray Train's TorchTrainer on a local Ray instance gives torchrun's losses."""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
import types
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
    """Run ``cmd``; every 0.5 s, note what each process of its tree listens on: {ip:port: process names}
    (every name its process had while watched: Ray retitles a worker actor by the task it runs)."""
    job = subprocess.Popen(
        cmd, env=launcher_env(), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(job.stderr.read()), daemon=True)
    reader.start()
    seen: dict[str, int] = {}  # ip:port -> pid
    names: dict[int, set[str]] = {}
    deadline = time.monotonic() + timeout
    try:
        while job.poll() is None:
            assert time.monotonic() < deadline, f"no exit within {timeout} s"
            for pid in [job.pid, *descendants(job.pid)]:
                with contextlib.suppress(OSError):  # a process that ended meanwhile
                    names.setdefault(pid, set()).add(Path(f"/proc/{pid}/comm").read_text().strip())
                    seen.update(dict.fromkeys(listening_sockets(pid), pid))
            time.sleep(0.5)
    finally:
        job.kill()
        job.wait()
        reader.join(10)
    return job.returncode, "".join(err), {addr: ",".join(sorted(names[pid])) for addr, pid in seen.items()}


@needs_ray
@pytest.mark.slow  # about 60 s of CPU over 16 processes (Ray Train's control actors, 2 workers, torchrun)
@pytest.mark.timeout(1200)  # with the wait for other tests' Ray instances (one_ray_at_a_time)
def test_two_ray_workers_match_torchrun(tmp_path, shared_tmp, one_ray_at_a_time):
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
    names = {n for joined in ports.values() for n in joined.split(",")}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::RayTrainWo") for n in names), ports
    outside = {a: n for a, n in ports.items() if not loopback(a)}
    assert len(outside) <= 1 and all("ray::RayTrainWo" in n for n in outside.values()), outside


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


# -- the driver's signals and failure line, in this process (no Ray: a stand-in trainer and board) --------


class _Method:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):  # the stand-in's "ObjectRef" is the value itself (ray.get is the identity)
        return self.fn(*args)


class _Board:
    """The script's StopBoard, called as a Ray actor handle would be."""

    def __init__(self, cls):
        self.actor = cls()

    def __getattr__(self, name):
        return _Method(getattr(self.actor, name))


class _Trainer:
    """fit(): signal this process (as a user or scheduler signals the driver), wait until the driver
    relayed the signal to the board, then report ``outcome`` as rank 0 does (None: fit returns at once)."""

    def __init__(self, board, signals, outcome=None):
        self.board, self.signals, self.outcome, self.release = board, signals, outcome, threading.Event()

    def fit(self):
        for signum in self.signals:
            os.kill(os.getpid(), signum)
            deadline = time.monotonic() + 10
            while not self.board.actor.signum and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.outcome is None:
            self.release.wait(30)  # a stuck job: only a second signal ends it
        else:
            self.board.actor.report(*self.outcome)


def script(monkeypatch):
    spec = importlib.util.spec_from_file_location("ray_train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(get=lambda ref, timeout=None: ref))
    return module


def test_a_signal_to_the_driver_reaches_the_workers_and_its_code_is_the_exit_code(monkeypatch, capsys):
    # SIGINT to the driver: relayed through the board; the workers stopped (rank 0 reported SIGTERM, as a
    # rank that got its stop from a peer would): the driver says rank 0's line and exits 130, its own.
    module = script(monkeypatch)
    board = _Board(module.StopBoard)
    trainer = _Trainer(board, [signal.SIGINT], ("interrupted at epoch 3; last checkpoint: none", 143))
    before = signal.getsignal(signal.SIGINT)
    assert module.fit_relaying_signals(trainer, board) == 130
    assert board.actor.signum == signal.SIGINT
    assert capsys.readouterr().err == "distgnn train: interrupted at epoch 3; last checkpoint: none\n"
    assert signal.getsignal(signal.SIGINT) is before  # the driver's handlers are put back


def test_a_second_signal_ends_the_job_at_once(monkeypatch, capsys):
    module = script(monkeypatch)
    board = _Board(module.StopBoard)
    trainer = _Trainer(board, [signal.SIGTERM, signal.SIGTERM])
    try:
        assert module.fit_relaying_signals(trainer, board) == 143
    finally:
        trainer.release.set()
    assert capsys.readouterr().err == (
        "launch/ray_train.py: error: SIGTERM again: stopped the workers at once, not waiting for the "
        "checkpoint on exit\n"
    )


def test_the_failure_line_names_the_root_cause(monkeypatch):
    module = script(monkeypatch)

    class Died(Exception):
        pass

    class HealthCheck(Exception):
        def __init__(self, failure):
            super().__init__("A worker health check failed.")
            self.health_check_failure = failure

    class GroupError(Exception):
        def __init__(self, failures):
            super().__init__("Training failed due to worker errors:\n...\nlast line")
            self.worker_failures = failures

    peer = Exception("Traceback ...\nDistGNNError: worker rank 0 failed with exit code 3")
    own = Exception("Traceback ...\nDistGNNError: worker rank 1 failed with exit code 2")
    line = module.failure_line(GroupError({0: peer, 1: HealthCheck(Died())}), Died)
    assert line == "worker rank 1 died (its process was killed or crashed); the other workers were stopped"
    line = module.failure_line(GroupError({0: peer, 1: own}), Died)
    assert line == "worker rank 1 failed with exit code 2; the other workers were stopped"
    assert module.failure_line(RuntimeError("Ray says\nsomething"), Died) == "Ray training failed: something"


def test_ray_start_up_timing_out_is_one_line_saying_what_to_do(monkeypatch):
    # Ray waits a fixed 30 s for its raylet; a busy machine overruns it with a multi-line exception.
    module = script(monkeypatch)
    calls = []

    def init(**kwargs):
        calls.append("init")
        raise Exception("The current node timed out during startup. This could happen because ...")

    ray = types.SimpleNamespace(init=init, shutdown=lambda: calls.append("shutdown"))
    with pytest.raises(module.DistGNNError) as err:
        module.start_local_ray(ray, num_cpus=2)
    assert str(err.value) == (
        "Ray's local instance did not start within Ray's 30 s (is the machine busy with other jobs?): "
        "start one with `ray start --head` and pass --address auto"
    )
    assert calls == ["init", "shutdown"]  # what it had started is stopped

    ray.init = lambda **kwargs: (_ for _ in ()).throw(ValueError("num_cpus must be positive"))
    with pytest.raises(ValueError, match="num_cpus"):  # any other error is Ray's own
        module.start_local_ray(ray, num_cpus=0)
