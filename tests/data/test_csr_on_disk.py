"""The out-of-core CSR build: the same indptr and indices as normalize_edges + build_csr in memory, bit for
bit, with many buckets, with re-split buckets and with one; numpy allocations within the budget; one line per
bad input; nothing left behind (no output directory, no temporary sibling, no scratch) when it fails."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from distgnn.data import build_csr, normalize_edges
from distgnn.data import csr_on_disk as ooc
from distgnn.data.csr_on_disk import MIN_MEMORY, build_csr_on_disk, index_dtype, load_csr_files
from distgnn.data.edge_chunks import array_chunks
from distgnn.errors import DistGNNError

LARGE = 1 << 30


def _edges(seed: int, n: int, e: int, skew: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random directed edges with repeats, self-loops, asymmetric pairs, and isolated nodes at the top of
    the range; ``skew`` sends half the edges to 8 hub nodes (one bucket overflows)."""
    rng = np.random.default_rng(seed)
    used = n - 7  # nodes n-7 .. n-1 stay isolated
    src = rng.integers(0, used, e)
    dst = rng.integers(0, used, e)
    dst[: e // 10] = src[: e // 10]  # self-loops
    src[e // 10 : e // 5] = src[: e // 10] + 1  # repeated edges
    dst[e // 10 : e // 5] = dst[: e // 10]
    if skew:
        dst[e // 2 :] = rng.integers(100, 108, e - e // 2)
    return src, dst


def _in_memory(src, dst, n, symmetrize):
    return build_csr(*normalize_edges(src, dst, n, symmetrize=symmetrize), n)


def _leftovers(tmp_path, *keep: str) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in keep)


@pytest.mark.parametrize("symmetrize", [True, False])
@pytest.mark.parametrize(
    ("memory", "hint", "skew"),
    [(MIN_MEMORY, False, False), (MIN_MEMORY, True, False), (MIN_MEMORY, True, True), (LARGE, True, False)],
    ids=["tiny-256-buckets", "tiny-planned", "tiny-skewed-resplit", "large-one-bucket"],
)
def test_equals_the_in_memory_csr(tmp_path, symmetrize, memory, hint, skew):
    n, e = 30_000, 120_000
    src, dst = _edges(1, n, e, skew)
    src32 = src.astype(np.int32)  # int32 and int64 chunks, of uneven sizes
    chunks = [(src32[:1], dst[:1]), (src32[1:50_000], dst[1:50_000]), (src[50_000:], dst[50_000:])]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    res = build_csr_on_disk(
        chunks,
        n,
        tmp_path / "csr",
        memory_bytes=memory,
        scratch=scratch,
        symmetrize=symmetrize,
        num_edges=e if hint else None,
    )
    indptr, indices = load_csr_files(tmp_path / "csr")
    want_indptr, want_indices = _in_memory(src, dst, n, symmetrize)
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    np.testing.assert_array_equal(indptr, want_indptr)
    np.testing.assert_array_equal(indices, want_indices)
    assert res.num_edges == indices.shape[0] and res.num_nodes == n
    if memory == LARGE:
        assert res.buckets == 1
    else:
        assert res.buckets >= 5
    assert (res.splits > 0) == skew
    assert sorted(p.name for p in (tmp_path / "csr").iterdir()) == ["indices.npy", "indptr.npy"]
    assert _leftovers(tmp_path) == ["csr", "scratch"] and not any(scratch.iterdir())


@pytest.mark.parametrize("symmetrize", [True, False])
@pytest.mark.parametrize("seed", [2, 3])
def test_small_random_graphs_match(tmp_path, symmetrize, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 40))
    src, dst = rng.integers(0, n - 3, 300), rng.integers(0, n - 3, 300)
    chunks = array_chunks(src, dst, chunk_edges=int(rng.integers(1, 50)))
    build_csr_on_disk(chunks, n, tmp_path / "csr", memory_bytes=MIN_MEMORY, symmetrize=symmetrize)
    got = load_csr_files(tmp_path / "csr")
    for a, b in zip(got, _in_memory(src, dst, n, symmetrize), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("n", "chunks", "indptr"),
    [
        (0, [], [0]),
        (3, [], [0, 0, 0, 0]),
        (3, [(np.array([1, 2]), np.array([1, 2]))], [0, 0, 0, 0]),  # only self-loops
        (3, [(np.array([], dtype=np.int64), np.array([], dtype=np.int64)), (np.array([0]), np.array([2]))],
         [0, 1, 1, 2]),
    ],
)  # fmt: skip
def test_empty_graphs(tmp_path, n, chunks, indptr):
    res = build_csr_on_disk(chunks, n, tmp_path / "csr", memory_bytes=MIN_MEMORY)
    got_indptr, got_indices = load_csr_files(tmp_path / "csr")
    assert got_indptr.tolist() == indptr
    assert got_indices.shape == (indptr[-1],) and res.num_edges == indptr[-1]


def test_index_dtype_widens_past_int32():
    assert index_dtype(2**31) == np.int32 and index_dtype(2**31 + 1) == np.int64


def _bad_chunks():
    yield np.array([0, 1]), np.array([1, 2])
    yield np.array([3, 4]), np.array([4, 5])
    yield np.array([5, 6, 7, 8, 9, 2]), np.array([6, 7, 8, 9, 0, -3])


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (_bad_chunks, "edge chunk 2, edge 5: node ID -3 is outside the node range [0, 10)"),
        (lambda: [(np.array([0, 10]), np.array([1, 2]))], "edge chunk 0, edge 1: node ID 10 is outside"),
        (lambda: [(np.array([0, 1]), np.array([1]))], "chunk 0: src and dst must be 1-D and equally"),
        (lambda: [(np.array([0.0]), np.array([1]))], "edge chunk 0: src must hold integer node IDs"),
        (lambda: [(np.array([2**40], dtype=np.uint64), np.array([1]))], "node ID 1099511627776 is outside"),
    ],
)
def test_bad_ids_are_one_line_and_leave_nothing(tmp_path, chunks, message):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(DistGNNError) as err:
        build_csr_on_disk(chunks(), 10, tmp_path / "csr", memory_bytes=MIN_MEMORY, scratch=scratch)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert _leftovers(tmp_path) == ["scratch"] and not any(scratch.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory_bytes": 1000}, "the memory budget must be at least"),
        ({"num_nodes": -1}, "num_nodes must be in [0, 3037000499], got -1"),
        ({"scratch": "nowhere"}, "scratch directory nowhere does not exist"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    args = {"chunks": [], "num_nodes": 4, "out": tmp_path / "csr", "memory_bytes": MIN_MEMORY, **kwargs}
    with pytest.raises(DistGNNError, match=message.replace("[", r"\[")):
        build_csr_on_disk(**args)
    assert _leftovers(tmp_path) == []


def test_an_existing_output_is_refused_and_kept(tmp_path):
    (tmp_path / "csr").mkdir()
    (tmp_path / "csr" / "mine").write_text("x")
    with pytest.raises(DistGNNError, match="already exists"):
        build_csr_on_disk([], 4, tmp_path / "csr", memory_bytes=MIN_MEMORY)
    assert (tmp_path / "csr" / "mine").read_text() == "x" and _leftovers(tmp_path) == ["csr"]


def test_a_node_too_large_to_sort_names_it(tmp_path):
    cap = MIN_MEMORY // ooc.SORT_BYTES_PER_KEY
    src = np.arange(cap + 1) % 50 + 1  # node 0 gets cap + 1 in-edge entries (repeats included)
    with pytest.raises(DistGNNError, match=r"node 0 has \d+ in-edge entries .* give at least \d+ bytes"):
        build_csr_on_disk(
            [(src, np.zeros_like(src))], 60, tmp_path / "csr", memory_bytes=MIN_MEMORY, symmetrize=False
        )
    assert _leftovers(tmp_path) == []


def _failing_chunks(src, dst):
    yield src[:1000], dst[:1000]
    yield src[1000:2000], dst[1000:2000]
    raise RuntimeError("the source broke")


@pytest.mark.parametrize("where", ["reading", "sorting", "splitting", "writing"])
def test_a_failure_mid_pass_leaves_nothing(tmp_path, monkeypatch, where):
    src, dst = _edges(4, 30_000, 120_000, skew=True)
    chunks = [(src, dst)]
    calls = []

    def fail_on(nth, real):
        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == nth:
                raise RuntimeError("injected")
            return real(*args, **kwargs)

        return wrapped

    if where == "reading":
        chunks = _failing_chunks(src, dst)
    elif where == "sorting":
        monkeypatch.setattr(ooc, "unique_sorted", fail_on(3, ooc.unique_sorted))
    elif where == "splitting":
        monkeypatch.setattr(ooc, "split_bucket", fail_on(1, ooc.split_bucket))
    else:
        monkeypatch.setattr(ooc.NpyAppender, "append", fail_on(3, ooc.NpyAppender.append))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(RuntimeError, match="injected|the source broke"):
        build_csr_on_disk(
            chunks, 30_000, tmp_path / "csr", memory_bytes=MIN_MEMORY, scratch=scratch, num_edges=120_000
        )
    assert _leftovers(tmp_path) == ["scratch"] and not any(scratch.iterdir())


def test_numpy_memory_stays_within_the_budget(tmp_path):
    """3M edges over 1M nodes (symmetrised: 6M keys) with a 16 MiB budget: the in-memory path needs over
    150 MiB; the out-of-core one stays under the budget plus 4 MiB (file buffers, small arrays)."""
    n, e, budget = 1_000_000, 3_000_000, 16 << 20
    rng = np.random.default_rng(5)
    for name in ("src", "dst"):
        np.save(tmp_path / f"{name}.npy", rng.integers(0, n, e, dtype=np.int64))
    src = np.load(tmp_path / "src.npy", mmap_mode="r")  # the chunks are views of a map: not counted
    dst = np.load(tmp_path / "dst.npy", mmap_mode="r")
    tracemalloc.start()
    try:
        res = build_csr_on_disk(array_chunks(src, dst, 1 << 20), n, tmp_path / "csr", memory_bytes=budget)
        ooc_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        want = _in_memory(src, dst, n, True)
        memory_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.buckets > 1
    assert ooc_peak <= budget + (4 << 20), ooc_peak
    assert memory_peak >= 8 * budget, memory_peak  # the graph is worth measuring
    for a, b in zip(load_csr_files(tmp_path / "csr"), want, strict=True):
        np.testing.assert_array_equal(a, b)
