"""How a multi-process job stops when one rank fails: the cause named once, every rank out in bounded time.

A rank that fails on its own (bad input, out of memory, a bug) publishes ``rank R: cause`` in the job's
key-value store (the one the process group was built on: ``ProcessLayout.store``) and stops; its peers'
next collective then fails at once ("connection closed") or, for a peer that hangs without dying, after
the collective timeout. A peer that fails that way does not repeat the cause: it looks up who failed and
stops with ``rank Q stopped: rank R failed`` (or, when nobody published, that a peer died or stopped
responding).

Errors every rank raises identically (:class:`AgreedError`: preflight mismatches, a non-finite loss) are
printed once per node by the CLI, not once per rank.

After the first epoch the groups' timeout drops from the setup timeout (``--timeout``: joining, loading,
kernel compilation, the first epoch) to ``--collective-timeout``: the bound on how long a rank waits for a
silent peer once training runs.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import torch
import torch.distributed as dist

from distgnn.errors import AgreedError, DistGNNError, PeerFailedError, TrainingInterrupted, first_line

FAILED_KEY = "distgnn/failed"
LOOKUP_S = 2.0  # how long a peer waits for the failing rank's note before reporting a silent failure


def out_of_memory_types() -> tuple[type[BaseException], ...]:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (MemoryError,) if oom is None else (MemoryError, oom)


def is_comm_failure(err: BaseException) -> bool:
    """True for the errors a collective raises when a peer died or timed out (gloo, NCCL, the store)."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Timed out waiting", "Connection reset by peer")
    )


def publish(store: dist.Store | None, rank: int, cause: str) -> None:
    """Record in ``store`` that ``rank`` failed with ``cause`` (first writer wins; best effort)."""
    if store is None:
        return
    with contextlib.suppress(Exception):
        store.compare_set(FAILED_KEY, "", f"{rank}\t{cause}")


def lookup(store: dist.Store | None, timeout: float = LOOKUP_S) -> tuple[int, str] | None:
    """(rank, cause) of the rank that published a failure in ``store``, waiting up to ``timeout``."""
    if store is None:
        return None
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if store.check([FAILED_KEY]):
                rank, cause = store.get(FAILED_KEY).decode().split("\t", 1)
                return int(rank), cause
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


@contextlib.contextmanager
def reported(rank: int, world_size: int, store: dist.Store | None = None) -> Iterator[None]:
    """Run one rank's training; turn what goes wrong into one line that names the failing rank.
    ``store``: the job's store, where the ranks tell each other who failed (None: nobody is told)."""
    if world_size == 1:
        try:
            yield
        except out_of_memory_types() as err:
            raise DistGNNError(f"out of memory ({type(err).__name__}: {first_line(err)})") from err
        return
    try:
        yield
    except (AgreedError, TrainingInterrupted):  # the same on every rank; a stop is not a failure to publish
        raise
    except DistGNNError as err:
        publish(store, rank, str(err))
        raise DistGNNError(f"rank {rank} on {socket.gethostname()}: {err}") from err
    except out_of_memory_types() as err:
        cause = f"out of memory ({type(err).__name__}: {first_line(err)})"
        publish(store, rank, cause)
        raise DistGNNError(f"rank {rank} on {socket.gethostname()}: {cause}") from err
    except Exception as err:
        if not is_comm_failure(err):
            publish(store, rank, f"{type(err).__name__}: {first_line(err)}")
            raise  # a bug: its traceback is the report
        found = lookup(store)
        if found is not None and found[0] != rank:
            raise PeerFailedError(f"rank {rank} stopped: rank {found[0]} failed") from err
        if "Timed out" in str(err):
            why = "a peer did not answer in time: it died or stopped responding (--collective-timeout)"
        else:
            why = f"a peer died ({first_line(err)})"
        raise PeerFailedError(f"rank {rank} stopped: {why}") from err
