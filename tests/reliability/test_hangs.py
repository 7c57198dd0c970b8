"""No hangs: a rank that raises, runs out of memory or stops responding ends the whole job within 60 s,
with the failing rank and its cause named once (under ``--nproc`` and under two torchrun agents)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
from guard_helpers import BIN, FAST, error_lines, fault_time, job_env, pid_gone, run_job, tiny_parts

from distgnn import failure
from distgnn.errors import DistGNNError, PeerFailedError

HOST = socket.gethostname()
OOM = f"distgnn train: error: rank 1 on {HOST}: out of memory (MemoryError: simulated: cannot allocate 1 GiB)"
PEER = "distgnn train: error: rank 0 stopped: rank 1 failed"
LAUNCHER = "distgnn train: error: worker rank 1 failed with exit code 2; the other workers were stopped"
SILENT = "a peer did not answer in time: it died or stopped responding (--collective-timeout)"
TORCHRUN_SH = __import__("pathlib").Path(__file__).resolve().parents[2] / "launch" / "torchrun.sh"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return tiny_parts(tmp_path_factory.mktemp("hangs"))


def nproc_job(parts, *extra: str) -> list[str]:
    return [str(BIN / "distgnn"), "train", "--partitions", str(parts), "--nproc", "2", "--epochs", "8",
            *FAST, *extra]  # fmt: skip


@pytest.mark.timeout(150)
def test_a_rank_out_of_memory_stops_every_rank_with_one_cause(parts, tmp_path):
    log = tmp_path / "fault"
    proc, ended = run_job(nproc_job(parts), job_env("1:2:oom", log), timeout=140)
    _, at = fault_time(log)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert ended - at < 60
    lines = error_lines(proc.stderr)
    assert lines.count(OOM) == 1, proc.stderr[-3000:]
    assert sum("out of memory" in line for line in lines) == 1  # the cause is named once
    assert set(lines) <= {OOM, PEER, LAUNCHER} and lines[-1] == LAUNCHER
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # >= 35 s by design: 5 s timeout + torch elastic's 30 s grace before SIGKILL
@pytest.mark.timeout(150)
def test_a_rank_that_stops_responding_is_timed_out_and_killed(parts, tmp_path):
    # SIGSTOP: alive but silent. Its peer's collective times out (--collective-timeout 5 after the first
    # epoch), the peer stops with one line, and the launcher kills the stopped process (SIGTERM, then
    # SIGKILL after torch elastic's 30 s grace, since a stopped process cannot act on SIGTERM).
    log = tmp_path / "fault"
    pid = None
    try:
        proc, ended = run_job(nproc_job(parts, "--collective-timeout", "5"), job_env("1:2:stop", log), 140)
        pid, at = fault_time(log)
        print(f"job ended {ended - at:.1f} s after rank 1 stopped")
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert ended - at < 60
        assert pid_gone(pid)
        lines = error_lines(proc.stderr)
        assert lines[0] == f"distgnn train: error: rank 0 stopped: {SILENT}", proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
    finally:
        if pid is not None and not pid_gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow  # two torchrun agents start (about 40 s on a loaded 2-core machine)
@pytest.mark.timeout(200)
def test_two_torchrun_agents_stop_together_naming_the_failing_rank(parts, tmp_path):
    log = tmp_path / "fault"
    port = _free_port()
    env = job_env("1:2:oom", log, NNODES="2", RDZV_ENDPOINT=f"127.0.0.1:{port}", RDZV_ID=f"hang-{port}",
                  DISTGNN_PREBUILD="0")  # fmt: skip
    cmd = ["bash", str(TORCHRUN_SH), "--nproc", "1", "--", "--partitions", str(parts), "--epochs", "8", *FAST]
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        errs = [p.communicate(timeout=180)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    ended = time.time()
    _, at = fault_time(log)
    assert ended - at < 60
    assert all(p.returncode != 0 for p in procs)
    lines = [error_lines(err) for err in errs]
    assert sorted(lines) == sorted([[OOM], [PEER]]), errs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the reporting rules, in one process ------------------------------------------------------------


@pytest.mark.parametrize(
    "raised,expected",
    [
        (DistGNNError("bad part"), f"rank 1 on {HOST}: bad part"),
        (MemoryError("no room"), f"rank 1 on {HOST}: out of memory (MemoryError: no room)"),
        (__import__("torch").OutOfMemoryError("CUDA out of memory. Tried 2 GiB\nmore"),
         f"rank 1 on {HOST}: out of memory (OutOfMemoryError: CUDA out of memory. Tried 2 GiB)"),
        (RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:5"),
         "rank 1 stopped: a peer died ([pair.cc:553] Connection closed by peer [127.0.0.1]:5)"),
        (RuntimeError("[unbound_buffer.cc:78] Timed out waiting 5000ms for recv operation to complete"),
         f"rank 1 stopped: {SILENT}"),
    ],
)  # fmt: skip
def test_what_a_failing_rank_reports(raised, expected, monkeypatch):
    monkeypatch.setattr(failure, "lookup", lambda timeout=0: None)  # no store in this process
    with pytest.raises(DistGNNError) as info, failure.reported(rank=1, world_size=2):
        raise raised
    assert str(info.value) == expected
    assert isinstance(info.value, PeerFailedError) == ("stopped" in expected)


def test_a_peer_names_the_rank_that_published_its_failure(monkeypatch):
    monkeypatch.setattr(failure, "lookup", lambda timeout=0: (3, "rank 3 on x: out of memory"))
    with pytest.raises(PeerFailedError, match=r"^rank 0 stopped: rank 3 failed$"):
        with failure.reported(rank=0, world_size=4):
            raise RuntimeError("Connection closed by peer")


def test_a_bug_keeps_its_traceback():
    with pytest.raises(KeyError), failure.reported(rank=0, world_size=2):
        raise KeyError("bug")
