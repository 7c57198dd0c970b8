"""The buffer pool (kernels/pool.py, csrc/output.h): freed large buffers are reused, trim() frees what an
epoch did not reuse and raises the idle limit so that the next epoch keeps what this one gave back.

The pool is one per process and other tests in this worker use it too: each test starts by trimming
twice, which frees every idle buffer from before. Buffers are uninitialised: holding even a GB of them
touches no memory.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from distgnn.kernels import cpu, pool

MB = 1 << 20
FLOAT = torch.empty(0)


@pytest.fixture(autouse=True)
def clean_pool():
    if not cpu.is_available():
        pytest.skip(f"the C++ kernels do not build here: {cpu.build_error()}")
    cpu.load_extension()
    pool.trim()
    pool.trim()  # two epochs without them: every idle buffer from before is freed
    assert pool.stats()["idle"] == 0


def test_a_freed_buffer_is_handed_out_again_and_is_huge_page_aligned():
    a = pool.empty((2048, 1031), FLOAT)  # 8.05 MiB: a 10 MiB buffer
    ptr = a.data_ptr()
    assert ptr % (2 * MB) == 0 and a.shape == (2048, 1031) and a.dtype == torch.float32
    del a
    assert pool.stats()["idle"] == 10 * MB
    b = pool.empty((2048, 1031), FLOAT)
    assert b.data_ptr() == ptr and pool.stats()["fresh"] == 10 * MB  # one allocation for both
    c = pool.empty((2048, 1031), FLOAT)  # b is alive: another buffer
    assert c.data_ptr() != ptr


def test_a_request_takes_the_smallest_idle_buffer_that_wastes_at_most_a_quarter():
    big, small = pool.empty((20 * MB // 4,), FLOAT), pool.empty((12 * MB // 4,), FLOAT)
    ptrs = {"big": big.data_ptr(), "small": small.data_ptr()}
    del big, small  # idle: 12 and 20 MiB
    ten = pool.empty((10 * MB // 4,), FLOAT)
    assert ten.data_ptr() == ptrs["small"]  # 12 MiB for 10: the best fit
    sixteen = pool.empty((16 * MB // 4,), FLOAT)
    assert sixteen.data_ptr() == ptrs["big"]  # 20 MiB for 16: a quarter, still taken
    del ten, sixteen
    four = pool.empty((4 * MB // 4,), FLOAT)
    assert four.data_ptr() not in ptrs.values()  # 12 MiB for 4 would waste two thirds: a new one


def test_small_and_non_cpu_buffers_are_plain_allocations():
    small = pool.empty((100, 100), FLOAT)
    assert pool.stats()["live"] == 0  # below 4 MiB: torch's allocator
    meta = pool.empty((4096, 4096), torch.empty(0, dtype=torch.float64, device="meta"))
    assert meta.device.type == "meta" and meta.dtype == torch.float64 and meta.shape == (4096, 4096)
    assert small.shape == (100, 100)


def test_trim_frees_what_a_whole_epoch_did_not_take_again():
    a = pool.empty((2048, 1297), FLOAT)  # a 12 MiB buffer
    ptr = a.data_ptr()
    del a
    assert pool.trim() == 0  # end of "epoch 1": given back during it, so kept
    b = pool.empty((2048, 1297), FLOAT)
    assert b.data_ptr() == ptr  # reused in "epoch 2"
    del b
    assert pool.trim() == 0  # given back during epoch 2: kept
    assert pool.trim() == 12 * MB  # epoch 3 never asked for it: freed
    assert pool.stats()["idle"] == 0


LIMIT_SCRIPT = """
import torch
from distgnn.kernels import cpu, pool
ext = cpu.load_extension()
MB, FLOAT = 1 << 20, torch.empty(0)
big = (150 * 1024, 1024)  # 600 MiB each, untouched
def epoch():
    held = [pool.empty(big, FLOAT) for _ in range(3)]  # 1.8 GiB live at once
    del held  # freed buffers wait up to the idle limit; the rest go back to the system
    return pool.stats()
s = epoch()  # the limit starts at 1 GiB: one buffer kept, two given back
assert s["released"] == 2 * 600 * MB and s["idle"] == 600 * MB, s
ext.pool_trim(0)  # a machine with no memory to spare: the pool does not grow
assert pool.stats()["limit"] == 600 * MB
s = epoch()
assert s["released"] == 2 * 600 * MB and s["idle"] == 600 * MB, s
pool.trim()  # memory to spare: the limit takes what the epoch gave back
assert pool.stats()["limit"] >= 3 * 600 * MB
s = epoch()
assert s["released"] == 0 and s["idle"] == 3 * 600 * MB and s["fresh"] == 2 * 600 * MB, s
pool.trim()
s = epoch()  # steady: nothing allocated, nothing given back
assert s["released"] == 0 and s["fresh"] == 0 and s["idle"] == 3 * 600 * MB, s
pool.trim()
pool.trim()
pool.trim()
assert pool.stats()["idle"] == 0  # two epochs without them: freed
print("ok")
"""


@pytest.mark.timeout(120)
def test_what_an_epoch_gave_back_is_kept_by_the_next_where_memory_allows():
    # In its own process: the raised limit would otherwise stay with this worker's later tests.
    out = subprocess.run([sys.executable, "-c", LIMIT_SCRIPT], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_mm_writes_the_same_product_into_a_pooled_buffer():
    torch.manual_seed(0)
    a, b = torch.randn(9000, 700), torch.randn(700, 300)
    out = pool.mm(a, b)  # 10.3 MiB: pooled
    assert torch.equal(out, a @ b)
    assert pool.stats()["live"] == 12 * MB
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert pool.mm(a, b).dtype == torch.bfloat16  # under autocast: plainly a @ b, autocast's dtype


def test_add_bias_and_select_rows_match_torchs_autograd_bit_for_bit():
    torch.manual_seed(1)
    x = torch.randn(40_000, 40, requires_grad=True)  # 6.1 MiB rows: pooled
    bias = torch.randn(40, requires_grad=True)
    idx = torch.randint(0, 40_000, (5000,))
    grads = []
    for add, select in ((pool.add_bias, pool.select_rows), (torch.add, torch.index_select)):
        x.grad = bias.grad = None
        out = add(x, bias)
        rows = select(out, idx) if select is pool.select_rows else select(out, 0, idx)
        (rows.square().sum() + out.sum()).backward()
        grads.append((out.detach(), rows.detach(), x.grad, bias.grad))
    assert pool.stats()["live"] >= 6 * MB  # grads[0]'s row-sized tensors are pooled
    for ours, torchs in zip(*grads, strict=True):
        assert torch.equal(ours, torchs)
