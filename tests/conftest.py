"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def one_thread():
    """One intra-op thread for tests on tiny tensors: they gain nothing from threads, and on a shared
    2-core machine OpenMP threads contending with other processes make small ops far slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def _run_lock(tmp_path_factory, mode: int):
    """``flock(mode)`` on one file shared by every xdist worker of this run, held while the test runs."""
    lock = tmp_path_factory.getbasetemp().parent / "cpu-heavy.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, mode)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def one_ray_at_a_time(tmp_path_factory):
    """Runs the test alone among the run's Ray tests and minutes-long multi-process tests
    (``loads_every_core``): a local Ray instance waits a fixed 30 s for its raylet to register, which
    two Ray instances starting at once, or one beside a job loading both cores, overrun on a 2-core
    machine ("the current node timed out during startup")."""
    with _run_lock(tmp_path_factory, fcntl.LOCK_EX):
        yield


@pytest.fixture
def loads_every_core(tmp_path_factory):
    """For tests that keep every core busy for minutes: they run beside each other, never beside a
    starting local Ray instance (``one_ray_at_a_time``)."""
    with _run_lock(tmp_path_factory, fcntl.LOCK_SH):
        yield


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``<repo>/../shared/datasets`` (Cora/CiteSeer .npz); tests using it skip where it is absent."""
    path = REPO.parent / "shared" / "datasets"
    if not (path / "cora.npz").is_file() or not (path / "citeseer.npz").is_file():
        pytest.skip("needs ../shared/datasets (Cora/CiteSeer), present in CI, absent in a user's clone")
    return path


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(argv) -> (exit code, stdout, stderr)``: the ``distgnn`` CLI in this process."""
    import io

    from distgnn.cli import main

    def run(args: list[str]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse
                code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def rdzv_endpoint():
    """``127.0.0.1:<port>`` of a c10d rendezvous store this test serves for its torchrun agents.

    The store listens on a port the OS picks (port 0) and stays bound until the test ends, so no other
    process can take the port in between (a free-port probe closes its socket before the agents bind).
    The agents' own attempt to host the store there fails (address in use) and they connect as
    clients: torch's c10d backend falls back to a client by design.
    """
    from datetime import timedelta

    from distgnn.comm.loopback import listening_store

    store = listening_store("127.0.0.1", 0, timedelta(seconds=60))
    yield f"127.0.0.1:{store.port}"
    del store  # the server stops with its last reference


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory) -> Path:
    """A directory every pytest-xdist worker of this run shares (its per-worker temp dirs' parent), for
    outputs that several test files compare against and that cost a multi-process run to make."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def pytest_collection_modifyitems(config, items):
    """Files holding a ``slow`` test first (stable otherwise): with ``--dist loadfile
    --no-loadscope-reorder`` (``make test``), pytest-xdist hands out files in this order, so the longest
    ones start at once instead of ending the run on one worker while the others idle."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
