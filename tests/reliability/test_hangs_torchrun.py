"""No hangs under two torchrun agents: a rank out of memory, or stopped (SIGSTOP), ends both agents within
60 s, the failing rank and its cause named once (the ``--nproc`` cases: test_hangs.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from guard_helpers import FAST, error_lines, fault_time, job_env, pid_gone, tiny_parts
from test_hangs import OOM, PEER, TORCHRUN_SH, only_the_stop_named


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return tiny_parts(tmp_path_factory.mktemp("hangs"))


def two_agents(parts, endpoint: str, fault: str, log, *extra: str) -> tuple[list[int], list[str], float]:
    """Two torchrun agents on 127.0.0.1, one worker each, rendezvous at ``endpoint`` (the
    ``rdzv_endpoint`` fixture): (exit codes, stderrs, when the last ended)."""
    env = job_env(fault, log, NNODES="2", RDZV_ENDPOINT=endpoint, RDZV_ID="hang", DISTGNN_PREBUILD="0")
    cmd = ["bash", str(TORCHRUN_SH), "--nproc", "1", "--", "--partitions", str(parts), "--epochs", "8", *FAST,
           *extra]  # fmt: skip
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        errs = [p.communicate(timeout=180)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [p.returncode for p in procs], errs, time.time()


@pytest.mark.slow  # two torchrun agents start (about 40 s on a loaded 2-core machine)
@pytest.mark.timeout(200)
def test_two_torchrun_agents_stop_together_naming_the_failing_rank(parts, tmp_path, rdzv_endpoint):
    log = tmp_path / "fault"
    codes, errs, ended = two_agents(parts, rdzv_endpoint, "1:2:oom", log)
    _, at = fault_time(log)
    assert ended - at < 60
    assert all(code != 0 for code in codes)
    lines = [error_lines(err) for err in errs]
    assert sorted(lines) == sorted([[OOM], [PEER]]), errs


@pytest.mark.slow  # two torchrun agents start (about 40 s on a loaded 2-core machine)
@pytest.mark.timeout(200)
def test_a_stopped_rank_under_two_torchrun_agents_is_killed_and_named_once(parts, tmp_path, rdzv_endpoint):
    # The stopped rank's own agent sees it running and would wait forever (torch elastic only checks
    # whether workers exited): its watchdog kills it, so both agents end.
    log = tmp_path / "fault"
    pid = None
    try:
        codes, errs, ended = two_agents(parts, rdzv_endpoint, "1:2:stop", log, "--collective-timeout", "5")
        pid, at = fault_time(log)
        print(f"both agents ended {ended - at:.1f} s after rank 1 stopped")
        assert ended - at < 60
        assert pid_gone(pid)
        assert all(code != 0 for code in codes)
        assert only_the_stop_named([line for err in errs for line in error_lines(err)]), errs
    finally:
        if pid is not None and not pid_gone(pid):
            os.kill(pid, signal.SIGKILL)
