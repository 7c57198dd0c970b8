"""Device binding of every ProcessLayout constructor, on a mocked 4-GPU machine (runs without CUDA).

Triton and NCCL launch on the *current* CUDA device, so each constructor must make the layout's device
current (``torch.cuda.set_device``); NCCL is chosen only when the tensors are CUDA tensors.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from distgnn.comm import layout as layout_mod
from distgnn.comm.layout import ProcessLayout, default_backend
from distgnn.errors import DistGNNError

CUDA = torch.device


@pytest.fixture
def gpus(monkeypatch):
    """A machine with 4 mocked GPUs; returns the list of devices set_device was called with."""
    bound: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: bound.append(torch.device(d)))
    return bound


@pytest.fixture
def fake_init(monkeypatch):
    """dist.init_process_group recorded instead of run; returns the kwargs it was given."""
    calls: list[dict] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(kw))
    monkeypatch.setattr(dist, "group", SimpleNamespace(WORLD=object()))  # the group "created"
    return calls


def test_default_backend_follows_the_tensors_device(gpus):
    assert default_backend() == "nccl"
    assert default_backend("cuda:2") == "nccl"
    assert default_backend("cpu") == "gloo"  # explicit CPU on a GPU machine: never NCCL


def test_default_backend_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_backend() == "gloo" and default_backend("cpu") == "gloo"


@pytest.mark.parametrize(
    ("device", "want"), [(None, CUDA("cuda", 0)), ("cuda", CUDA("cuda", 0)), ("cuda:2", CUDA("cuda", 2))]
)
def test_single_binds_its_device(gpus, device, want):
    lay = ProcessLayout.single(device)
    assert lay.device == want and gpus == [want]


def test_single_on_cpu_binds_nothing(gpus):
    assert ProcessLayout.single("cpu").device == CUDA("cpu") and gpus == []


@pytest.mark.parametrize(("local_rank", "index"), [(3, 3), (5, 1)])  # local ranks wrap over the 4 GPUs
def test_init_binds_local_rank_device_and_picks_nccl(gpus, fake_init, local_rank, index):
    lay = ProcessLayout.init(rank=1, world_size=2, local_rank=local_rank, store=object(), comm_nice=None)
    want = CUDA("cuda", index)
    assert (lay.device, lay.backend) == (want, "nccl")
    assert gpus == [want]
    (kw,) = fake_init
    assert kw["backend"] == "nccl" and kw["device_id"] == want and (kw["rank"], kw["world_size"]) == (1, 2)


def test_init_with_a_bare_cuda_device_uses_the_local_rank(gpus, fake_init):
    lay = ProcessLayout.init(
        rank=0, world_size=2, local_rank=2, store=object(), device="cuda", comm_nice=None
    )
    assert lay.device == CUDA("cuda", 2) and gpus == [CUDA("cuda", 2)] and lay.backend == "nccl"


def test_init_on_cpu_picks_gloo_on_a_gpu_machine(gpus, fake_init):
    lay = ProcessLayout.init(rank=0, world_size=2, store=object(), device="cpu", comm_nice=None)
    assert (lay.device, lay.backend) == (CUDA("cpu"), "gloo")
    assert gpus == [] and "device_id" not in fake_init[0] and fake_init[0]["backend"] == "gloo"


def test_init_gloo_without_device_stays_on_cpu(gpus, fake_init):
    lay = ProcessLayout.init(rank=0, world_size=2, store=object(), backend="gloo", comm_nice=None)
    assert lay.device == CUDA("cpu") and gpus == []


def test_init_gloo_on_cuda_tensors_binds_the_device(gpus, fake_init):
    """The one-shot GPU check's fallback when NCCL refuses two ranks on one GPU: gloo on CUDA tensors."""
    lay = ProcessLayout.init(
        rank=1, world_size=2, store=object(), backend="gloo", device="cuda:0", comm_nice=None
    )
    assert (lay.device, lay.backend) == (CUDA("cuda", 0), "gloo") and gpus == [CUDA("cuda", 0)]
    assert "device_id" not in fake_init[0]  # eager device binding is an NCCL feature


def test_nccl_with_cpu_tensors_is_refused(gpus, fake_init):
    with pytest.raises(DistGNNError, match="nccl backend needs CUDA tensors"):
        ProcessLayout.init(rank=0, world_size=2, store=object(), backend="nccl", device="cpu")
    assert fake_init == []  # refused before joining a group


@pytest.fixture
def fake_group(monkeypatch):
    def install(backend: str, rank: int = 1, local_rank: str | None = "3") -> None:
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_rank", lambda g=None: rank)
        monkeypatch.setattr(dist, "get_world_size", lambda g=None: 2)
        monkeypatch.setattr(dist, "get_backend", lambda g=None: backend)
        if local_rank is None:
            monkeypatch.delenv("LOCAL_RANK", raising=False)
        else:
            monkeypatch.setenv("LOCAL_RANK", local_rank)

    return install


def test_from_group_binds_the_local_rank_device(gpus, fake_group):
    fake_group("nccl")
    lay = ProcessLayout.from_group(object())
    assert lay.device == CUDA("cuda", 3) and gpus == [CUDA("cuda", 3)] and not lay.owns_group


def test_from_group_explicit_device_and_rank_fallback(gpus, fake_group):
    fake_group("nccl", rank=1, local_rank=None)  # no LOCAL_RANK: the group rank
    assert ProcessLayout.from_group(object()).device == CUDA("cuda", 1)
    assert ProcessLayout.from_group(object(), device="cuda:2").device == CUDA("cuda", 2)
    assert gpus == [CUDA("cuda", 1), CUDA("cuda", 2)]


def test_from_group_gloo_stays_on_cpu_and_nccl_refuses_cpu(gpus, fake_group):
    fake_group("gloo")
    assert ProcessLayout.from_group(object()).device == CUDA("cpu") and gpus == []
    fake_group("nccl")
    with pytest.raises(DistGNNError, match="nccl backend needs CUDA tensors"):
        ProcessLayout.from_group(object(), device="cpu")


def test_init_from_env_single_process_binds_gpu_0(gpus, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert ProcessLayout.init_from_env().device == CUDA("cuda", 0) and gpus == [CUDA("cuda", 0)]


def test_bind_device_is_a_no_op_on_cpu(gpus):
    assert layout_mod.bind_device(CUDA("cpu"), 3) == CUDA("cpu") and gpus == []
