"""No hangs under ``launch/ray_train.py`` (2 Ray Train workers): a rank stopped (SIGSTOP) is killed by its
watchdog once its peers have given up on it, naming it once, and the driver exits non-zero within 60 s
naming the dead worker (the ``--nproc`` and torchrun cases: test_hangs.py, test_hangs_torchrun.py)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from guard_helpers import FAST, error_lines, fault_time, job_env, pid_gone, tiny_parts
from ray_helpers import driver_lines, needs_ray, ray_job, worker_lines
from test_hangs import only_the_stop_named

pytestmark = [needs_ray, pytest.mark.slow]  # a local Ray instance: scheduled first
DIED = (
    "launch/ray_train.py: error: worker rank 1 died (its process was killed or crashed); the other workers "
    "were stopped"
)


@pytest.mark.timeout(360)
def test_a_stopped_ray_worker_is_killed_by_its_watchdog_and_named_once(tmp_path):
    # Ray Train sees a stopped actor as running (its health check waits minutes): the watchdog, a child
    # of the worker process as under the other launchers, kills it after --collective-timeout; Ray then
    # sees a dead worker and ends the run.
    parts = tiny_parts(tmp_path)
    log = tmp_path / "fault"
    args = ["--partitions", str(parts), "--epochs", "8", *FAST, "--collective-timeout", "5"]
    pid = None
    try:
        proc = ray_job(args, job_env("1:2:stop", log), tmp_path)
        ended = time.time()
        pid, at = fault_time(log)
        print(f"the Ray job ended {ended - at:.1f} s after rank 1 stopped")
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert ended - at < 60
        assert pid_gone(pid)
        assert only_the_stop_named(error_lines("\n".join(worker_lines(proc.stderr)))), proc.stderr[-3000:]
        assert [ln for ln in driver_lines(proc.stderr) if "error:" in ln] == [DIED], proc.stderr[-3000:]
    finally:
        if pid is not None and not pid_gone(pid):
            os.kill(pid, signal.SIGKILL)
