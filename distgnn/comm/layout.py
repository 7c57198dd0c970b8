"""The process layout: who am I, how many of us, which device and which process group.

Built once per training process (from the torchrun environment, from an explicit store, or as a
single process) and passed explicitly to every strategy and to the communication layer, in the spirit
of torchtitan's ``ParallelDims``. Nothing here is a module-level global: a test can hold several layouts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from distgnn.comm import loopback
from distgnn.comm.priority import COMM_NICE, boost_threads, thread_ids
from distgnn.config import DEFAULT_TIMEOUT_S
from distgnn.errors import DistGNNError, first_line


def default_backend(device: str | torch.device | None = None) -> str:
    """NCCL for CUDA tensors, gloo otherwise (the same code path runs on both).

    ``device`` is where the tensors will live; None means "the GPU if there is one". An explicit CPU
    device on a GPU machine gets gloo: NCCL cannot move CPU tensors.
    """
    if device is not None:
        return "nccl" if torch.device(device).type == "cuda" else "gloo"
    return "nccl" if torch.cuda.is_available() else "gloo"


def bind_device(device: torch.device, local_rank: int = 0) -> torch.device:
    """Make ``device`` this process's current CUDA device (Triton and NCCL launch on the current device,
    so tensors on ``cuda:k`` with current device 0 would fault); a bare ``cuda`` becomes
    ``cuda:local_rank`` (modulo the device count). CPU devices are returned unchanged."""
    if device.type != "cuda":
        return device
    if device.index is None:
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    torch.cuda.set_device(device)
    return device


def set_timeout(groups: list[dist.ProcessGroup | None], seconds: float) -> None:
    """Give each distinct, existing process group this collective timeout (how long a rank waits for a
    silent peer). ``ProcessGroup.set_timeout`` is what torch 2.14's ``dist.set_timeout`` calls."""
    seen: set[int] = set()
    for group in groups:
        if group is None or id(group) in seen:
            continue
        seen.add(id(group))
        group.set_timeout(timedelta(seconds=float(seconds)))


def store_from_env(timeout: float = DEFAULT_TIMEOUT_S) -> dist.Store | None:
    """A client of the store that an ``env://`` default group was built on (MASTER_ADDR:MASTER_PORT), as
    that group sees it; None without those variables. For groups made by a launcher (Ray Train), so a
    failing rank can still leave its note for the others (``ProcessLayout.from_group(store=...)``)."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        return None
    wait = timedelta(seconds=float(timeout))
    return dist.PrefixStore("default_pg", dist.TCPStore(addr, int(port), is_master=False, timeout=wait))


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise DistGNNError(f"environment variable {name} is not set; launch with torchrun")
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistGNNError(f"environment variable {name}={raw!r} is not an integer") from None


@dataclass
class ProcessLayout:
    """Rank, world size, device and process group of this training process.

    ``group`` is ``None`` for a single process (no communication at all). ``owns_group`` records
    whether :meth:`destroy` should tear down the default process group this layout created.
    ``comm_nice`` is the nice value given to the group's communication threads (None: left alone).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    group: dist.ProcessGroup | None = None
    owns_group: bool = False
    comm_nice: int | None = None
    timeout: float | None = None  # the group's set-up timeout in seconds (None: torch's default)
    store: dist.Store | None = None  # the group's key-value store (a failing rank's note goes there)

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise DistGNNError(f"world size must be >= 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise DistGNNError(f"rank {self.rank} is outside [0, {self.world_size})")
        if self.world_size > 1 and self.group is None:
            raise DistGNNError("a layout with more than one process needs a process group")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def single(cls, device: str | torch.device | None = None) -> ProcessLayout:
        """A one-process layout with no process group (the single-process engine)."""
        dev = torch.device(device) if device is not None else _pick_device(0)
        return cls(rank=0, world_size=1, local_rank=0, device=bind_device(dev))

    @classmethod
    def init(
        cls,
        *,
        rank: int,
        world_size: int,
        local_rank: int | None = None,
        backend: str | None = None,
        store: dist.Store | None = None,
        init_method: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        device: str | torch.device | None = None,
        comm_nice: int | None = COMM_NICE,
    ) -> ProcessLayout:
        """Initialise the default process group and return its layout.

        ``timeout`` (seconds) bounds every collective, so a dead peer takes the job down instead of
        hanging it. With ``world_size == 1`` and no store/init_method, no group is created.
        ``comm_nice``: with gloo, the threads the group starts get this nice value so transfers keep
        pace with compute (see ``distgnn.comm.priority``); None leaves them alone.
        """
        local_rank = rank if local_rank is None else local_rank
        if world_size == 1 and store is None and init_method is None:
            return cls.single(device)
        if dist.is_initialized():
            raise DistGNNError("a default process group is already initialised; use ProcessLayout.from_group")
        backend = backend or default_backend(device)
        dev = torch.device(device) if device is not None else _pick_device(local_rank, backend)
        if backend == "nccl" and dev.type != "cuda":
            raise DistGNNError(f"the nccl backend needs CUDA tensors, but this rank's device is {dev}")
        dev = bind_device(dev, local_rank)
        wait = timedelta(seconds=float(timeout))
        kwargs: dict = {"backend": backend, "rank": rank, "world_size": world_size, "timeout": wait}
        if dev.type == "cuda" and backend == "nccl":
            kwargs["device_id"] = dev  # binds NCCL to this device (no guessing in barrier); gloo has no use
        before = thread_ids()
        try:
            if store is None:  # the rendezvous init_process_group would run, done here to keep its store
                store, _, _ = next(dist.rendezvous(init_method or "env://", rank, world_size, timeout=wait))
                store.set_timeout(wait)
                store = dist.PrefixStore("default_pg", store)
            dist.init_process_group(store=store, **kwargs)
        except (RuntimeError, ValueError) as err:  # DistStoreError/DistNetworkError are RuntimeErrors
            first = first_line(err)
            raise DistGNNError(
                f"rank {rank} could not join the {backend} process group of {world_size}: {first}"
            ) from err
        new_threads = thread_ids() - before
        boosted = backend == "gloo" and comm_nice is not None and boost_threads(new_threads, comm_nice)
        return cls(
            rank=rank,
            world_size=world_size,
            local_rank=local_rank,
            device=dev,
            backend=backend,
            group=dist.group.WORLD,
            owns_group=True,
            comm_nice=comm_nice if boosted else None,
            timeout=float(timeout),
            store=store,
        )

    @classmethod
    def init_from_env(
        cls, *, timeout: float = DEFAULT_TIMEOUT_S, backend: str | None = None
    ) -> ProcessLayout:
        """Build the layout from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

        Without WORLD_SIZE (a plain ``python`` run) or with WORLD_SIZE=1 this is the single-process layout.
        """
        world_size = _env_int("WORLD_SIZE", 1)
        if world_size == 1:
            return cls.single()
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise DistGNNError(f"environment variable {name} is not set; launch with torchrun")
        rank = _env_int("RANK")
        local_rank = _env_int("LOCAL_RANK", rank)
        store = loopback.worker_store(rank, world_size, timeout)  # MASTER_ADDR 127.x: loopback only
        return cls.init(
            rank=rank,
            world_size=world_size,
            local_rank=local_rank,
            backend=backend,
            timeout=timeout,
            store=store,
        )

    @classmethod
    def from_group(
        cls,
        group: dist.ProcessGroup | None = None,
        *,
        device: str | torch.device | None = None,
        store: dist.Store | None = None,
    ) -> ProcessLayout:
        """Wrap an already-initialised process group (default: WORLD); :meth:`destroy` leaves it alone.
        ``store``: the group's store, where a failing rank leaves its note for the others (optional)."""
        if not dist.is_initialized():
            raise DistGNNError("torch.distributed is not initialised")
        group = group or dist.group.WORLD
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        backend = dist.get_backend(group)
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        dev = torch.device(device) if device is not None else _pick_device(local_rank, backend)
        if backend == "nccl" and dev.type != "cuda":
            raise DistGNNError(f"the group's nccl backend needs CUDA tensors, but the device is {dev}")
        dev = bind_device(dev, local_rank)
        return cls(
            rank=rank,
            world_size=world,
            local_rank=local_rank,
            device=dev,
            backend=backend,
            group=group,
            store=store,
        )

    def barrier(self) -> None:
        if self.group is not None:
            dist.barrier(group=self.group)

    def destroy(self) -> None:
        """Tear down the process group this layout created (no-op otherwise); idempotent."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False


def _pick_device(local_rank: int, backend: str | None = None) -> torch.device:
    """cuda:local_rank when CUDA is usable with the backend (not gloo), else cpu."""
    if torch.cuda.is_available() and backend != "gloo":
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")
