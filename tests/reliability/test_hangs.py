"""No hangs: a rank that raises, runs out of memory or stops responding ends the whole job within 60 s,
with the failing rank and its cause named once (under ``--nproc`` and under two torchrun agents)."""

from __future__ import annotations

import os
import signal
import socket

import pytest
from guard_helpers import BIN, FAST, error_lines, fault_time, job_env, pid_gone, run_job, tiny_parts

from distgnn.errors import DistGNNError, PeerFailedError, TrainingInterrupted
from distgnn.runtime import failure, watchdog

HOST = socket.gethostname()
OOM = f"distgnn train: error: rank 1 on {HOST}: out of memory (MemoryError: simulated: cannot allocate 1 GiB)"
PEER = "distgnn train: error: rank 0 stopped: rank 1 failed"
LAUNCHER = "distgnn train: error: worker rank 1 failed with exit code 2; the other workers were stopped"
SILENT = "a peer did not answer in time: it died or stopped responding (--collective-timeout)"
STOPPED = watchdog.MESSAGE.format(rank=1, host=HOST, grace=5.0)
KILLED = "distgnn train: error: worker rank 1 was killed by SIGKILL; the other workers were stopped"


PEER_LOST = "distgnn train: error: rank 0 stopped: "  # timed out, or the peer's kill came first


def only_the_stop_named(lines: list[str]) -> bool:
    """Rank 1's stop is named once (by its watchdog); rank 0 only says it stopped, naming no cause."""
    others = [line for line in lines if line not in (STOPPED, KILLED)]
    return lines.count(STOPPED) == 1 and all(line.startswith(PEER_LOST) for line in others)


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


@pytest.mark.slow  # >= 5 s by design (the collective timeout), about 20 s on 2 busy cores
@pytest.mark.timeout(150)
def test_a_rank_that_stops_responding_is_timed_out_and_killed(parts, tmp_path):
    # SIGSTOP: alive but silent. Its peer's collective times out (--collective-timeout 5 after the first
    # epoch) and the peer stops with one line; the stopped rank's watchdog kills it once it has been
    # stopped that long, naming it (distgnn.runtime.watchdog); the launcher names the killed rank.
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
        assert only_the_stop_named(lines) and lines[-1] == KILLED, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
    finally:
        if pid is not None and not pid_gone(pid):
            os.kill(pid, signal.SIGKILL)


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
    monkeypatch.setattr(failure, "lookup", lambda store, timeout=0: None)  # no store in this process
    with pytest.raises(DistGNNError) as info, failure.reported(rank=1, world_size=2):
        raise raised
    assert str(info.value) == expected
    assert isinstance(info.value, PeerFailedError) == ("stopped" in expected)


def test_a_peer_names_the_rank_that_published_its_failure(monkeypatch):
    monkeypatch.setattr(failure, "lookup", lambda store, timeout=0: (3, "rank 3 on x: out of memory"))
    with pytest.raises(PeerFailedError, match=r"^rank 0 stopped: rank 3 failed$"):
        with failure.reported(rank=0, world_size=4):
            raise RuntimeError("Connection closed by peer")


def test_a_bug_keeps_its_traceback():
    with pytest.raises(KeyError), failure.reported(rank=0, world_size=2):
        raise KeyError("bug")


def test_a_stop_on_a_signal_is_not_published_as_a_failure(monkeypatch):
    # Every rank stops on SIGTERM; one that published it would write to rank 0's store, which may be gone
    # (torch then prints a C++ "recvVector failed" warning with a stack: seen in a CI run).
    published = []
    monkeypatch.setattr(failure, "publish", lambda store, rank, cause: published.append(cause))
    with pytest.raises(TrainingInterrupted), failure.reported(rank=1, world_size=2):
        raise TrainingInterrupted(3, None, 15)
    with pytest.raises(DistGNNError), failure.reported(rank=1, world_size=2):
        raise DistGNNError("bad part")
    assert published == ["bad part"]
