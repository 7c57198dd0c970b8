"""Reading memory-mapped arrays through data.mapped keeps their pages out of this process's RSS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distgnn.data.mapped import pieces, take

needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/self/status")


def rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")


@needs_proc
def test_gathers_and_passes_over_a_mapped_array_leave_no_pages_behind(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((250_000, 64), dtype=np.float32))  # 64 MB
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows = np.sort(rng.choice(250_000, 60_000, replace=False))  # touches nearly every page

    before = rss_file_mb()
    got = take(x, rows)
    total = sum(float(p.sum(dtype=np.float64)) for p in pieces(x))
    assert rss_file_mb() - before < 16
    np.testing.assert_array_equal(got, np.asarray(x[rows]))  # the plain gather, for the values...
    assert rss_file_mb() - before > 48  # ...keeps the pages it touched: what take avoids
    assert total == pytest.approx(float(np.asarray(x).sum(dtype=np.float64)))


def test_arrays_in_memory_pass_through():
    a = np.arange(10)
    assert take(a, np.array([3, 1])).tolist() == [3, 1]
    assert [p.tolist() for p in pieces(a, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
