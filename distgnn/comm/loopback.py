"""Stores that listen on loopback only, for jobs whose processes all run on this machine (``--nproc``).

torch's TCPStore server listens on every interface (``[::]``) unless it is handed a socket that is
already bound (``master_listen_fd``, torch >= 2.0). ``distgnn train --nproc`` runs every process here,
so both of its stores are built on sockets bound to 127.0.0.1: the elastic agent's rendezvous store
(the ``distgnn-loopback`` rendezvous backend: torch's own c10d rendezvous on such a store) and the
workers' store, which rank 0 hosts at MASTER_ADDR:MASTER_PORT (the launcher sets MASTER_ADDR to
127.0.0.1; :func:`worker_store`). Gloo's own sockets follow ``GLOO_SOCKET_IFNAME=lo``, which the
launcher sets unless the caller did.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from datetime import timedelta

import torch.distributed as dist

from distgnn.errors import DistGNNError, first_line

LOOPBACK = "127.0.0.1"
BACKEND = "distgnn-loopback"


def is_loopback(addr: str) -> bool:
    """True for an IPv4 loopback address literal (127.x.x.x); host names are not resolved."""
    try:
        return ipaddress.IPv4Address(addr).is_loopback
    except ValueError:
        return False


def listening_store(addr: str, port: int, timeout: timedelta) -> dist.TCPStore:
    """A TCPStore server listening on ``addr:port`` only (port 0: one the OS picks)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        sock.listen(socket.SOMAXCONN)
        port = sock.getsockname()[1]
    except OSError:
        sock.close()
        raise
    return dist.TCPStore(
        addr, port, is_master=True, multi_tenant=True, timeout=timeout, master_listen_fd=sock.detach()
    )


def worker_store(rank: int, world_size: int, timeout: float) -> dist.TCPStore | None:
    """The workers' store when MASTER_ADDR is a loopback address and the workers host their own store
    (not torch elastic's shared agent store): rank 0 serves it on loopback only, the others connect.
    None otherwise (``init_process_group``'s env:// then creates it as usual)."""
    addr = os.environ.get("MASTER_ADDR", "")
    if not is_loopback(addr) or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        return None
    port, wait = int(os.environ["MASTER_PORT"]), timedelta(seconds=float(timeout))
    try:
        if rank == 0:
            return listening_store(addr, port, wait)
        return dist.TCPStore(addr, port, world_size, is_master=False, timeout=wait)
    except (OSError, RuntimeError) as err:  # DistStoreError/DistNetworkError are RuntimeErrors
        first = first_line(err)
        raise DistGNNError(f"rank {rank} could not reach the job's store at {addr}:{port}: {first}") from err


def _create_handler(params):  # torch's RendezvousParameters -> RendezvousHandler
    from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import C10dRendezvousBackend
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import create_handler
    from torch.distributed.elastic.rendezvous.utils import parse_rendezvous_endpoint

    class LoopbackBackend(C10dRendezvousBackend):  # torch's c10d rendezvous state, under our name
        @property
        def name(self) -> str:
            return BACKEND

    _, port = parse_rendezvous_endpoint(params.endpoint, default_port=0)
    read_timeout = params.get_as_int("read_timeout", 60)
    store = listening_store(LOOPBACK, port, timedelta(seconds=read_timeout))
    return create_handler(store, LoopbackBackend(store, params.run_id), params)


def register_backend() -> str:
    """Make ``distgnn-loopback`` a rendezvous backend torch's launcher can use; returns its name."""
    from torch.distributed.elastic.rendezvous import rendezvous_handler_registry

    rendezvous_handler_registry.register(BACKEND, _create_handler)
    return BACKEND
