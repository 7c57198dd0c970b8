"""Text edge lists: format variants, features/labels files, the default split, and exact error lines."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.data import edgelist, load_edgelist, normalize_edges
from distgnn.data.csr_on_disk import CsrOnDisk
from distgnn.errors import DistGNNError


def _file(tmp_path, text: str, name: str = "edges.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(*args, **kwargs) -> str:
    with pytest.raises(DistGNNError) as err:
        load_edgelist(*args, **kwargs)
    return str(err.value)


def _edge_set(g) -> set[tuple[int, int]]:
    src, dst = g.edges()
    return set(zip(src.tolist(), dst.tolist(), strict=True))


def test_format_variants(tmp_path):
    text = "# SNAP header\n# Nodes: 6\n\n0 1\n1\t2\n2,3\n3, 4  # inline comment\n  \n4 4\n5 0\r\n1 2\n"
    g = load_edgelist(_file(tmp_path, text))
    undirected = {(0, 1), (1, 2), (2, 3), (3, 4), (5, 0)}
    assert _edge_set(g) == undirected | {(b, a) for a, b in undirected}
    assert g.num_nodes == 6 and g.x.shape == (6, 1) and np.all(g.x == 1.0)
    assert g.y.tolist() == [-1] * 6 and g.num_classes == 0
    assert not (g.train_mask.any() or g.val_mask.any() or g.test_mask.any())


def test_directed_option_keeps_direction(tmp_path):
    g = load_edgelist(_file(tmp_path, "0 1\n2 1\n"), symmetrize=False)
    assert _edge_set(g) == {(0, 1), (2, 1)}


def test_chunked_parse_matches_reference(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 300, (2000, 2))
    lines = [f"{a} {b}" if i % 7 else f"# c{i}\n{a},{b}" for i, (a, b) in enumerate(pairs.tolist())]
    path = _file(tmp_path, "\n".join(lines))  # no trailing newline
    monkeypatch.setattr(edgelist, "CHUNK_BYTES", 97)
    g = load_edgelist(path)
    src, dst = normalize_edges(pairs[:, 0], pairs[:, 1], int(pairs.max()) + 1)
    assert np.array_equal(g.edges()[0], src) and np.array_equal(g.edges()[1], dst)


def test_features_labels_and_default_split(tmp_path):
    n = 50
    np.save(tmp_path / "feats.npy", np.arange(n * 3, dtype=np.float64).reshape(n, 3))
    y = np.arange(n) % 4
    y[:10] = -1
    np.save(tmp_path / "labels.npy", y)
    edges = _file(tmp_path, "\n".join(f"{i} {(i + 1) % 45}" for i in range(45)))
    g = load_edgelist(edges, features=tmp_path / "feats.npy", labels=tmp_path / "labels.npy", seed=3)
    assert g.num_nodes == 50 and g.x.dtype == np.float32 and g.x[7].tolist() == [21.0, 22.0, 23.0]
    assert g.num_classes == 4 and np.array_equal(g.y, y)
    sizes = [int(m.sum()) for m in (g.train_mask, g.val_mask, g.test_mask)]
    assert sizes == [24, 8, 8]  # 60/20/20 of the 40 labelled nodes
    assert not np.any(g.train_mask & g.val_mask) and not np.any(g.val_mask & g.test_mask)
    assert not np.any((g.train_mask | g.val_mask | g.test_mask) & (y < 0))
    again = load_edgelist(edges, features=tmp_path / "feats.npy", labels=tmp_path / "labels.npy", seed=3)
    other = load_edgelist(edges, features=tmp_path / "feats.npy", labels=tmp_path / "labels.npy", seed=4)
    assert np.array_equal(again.train_mask, g.train_mask)
    assert not np.array_equal(other.train_mask, g.train_mask)


def test_text_labels_are_node_label_pairs(tmp_path):
    edges = _file(tmp_path, "0 1\n1 2\n")
    labels = _file(tmp_path, "# node label\n0 1\n2 0\n4 1\n", "labels.txt")
    g = load_edgelist(edges, labels=labels)
    assert g.num_nodes == 5  # node 4 only appears in the labels file
    assert g.y.tolist() == [1, -1, 0, -1, 1] and g.num_classes == 2


@pytest.mark.parametrize(
    ("line", "shown"),
    [("a b c", "a b c"), ("1 2 3", "1 2 3"), ("7", "7"), ("1.5 2", "1.5 2"), ("3 x # c", "3 x # c")],
)
def test_malformed_line_is_named(tmp_path, line, shown):
    good = "# header\n" + "".join(f"{i} {i + 1}\n" for i in range(15))  # lines 1-16
    path = _file(tmp_path, good + line + "\n20 21\n")
    assert _error(path) == f"edges.txt:17: expected two integer node IDs, got '{shown}'"


def test_malformed_line_in_a_later_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(edgelist, "CHUNK_BYTES", 16)
    path = _file(tmp_path, "".join(f"{i} {i + 1}\n" for i in range(40)) + "\n41 oops\n")
    assert _error(path) == "edges.txt:42: expected two integer node IDs, got '41 oops'"


def test_single_column_file(tmp_path):
    assert _error(_file(tmp_path, "1\n2\n")) == "edges.txt:1: expected two integer node IDs, got '1'"


def test_negative_id_is_named(tmp_path):
    path = _file(tmp_path, "# c\n0 1\n\n2 -4\n")
    assert _error(path) == "edges.txt:4: negative node ID -4"


def test_out_of_range_id_with_features(tmp_path):
    np.save(tmp_path / "feats.npy", np.ones((5, 2), dtype=np.float32))
    path = _file(tmp_path, "0 1\n# c\n1 7\n9 2\n")
    message = _error(path, features=tmp_path / "feats.npy")
    assert message == "edges.txt:3: node ID 7 is out of range: feats.npy has 5 rows"


def test_label_rows_must_match_feature_rows(tmp_path):
    np.save(tmp_path / "feats.npy", np.ones((5, 2), dtype=np.float32))
    np.save(tmp_path / "labels.npy", np.zeros(4, dtype=np.int64))
    message = _error(
        _file(tmp_path, "0 1\n"), features=tmp_path / "feats.npy", labels=tmp_path / "labels.npy"
    )
    assert message == "labels.npy has 4 rows but the graph has 5 nodes"


def test_nan_features(tmp_path):
    x = np.ones((3, 2), dtype=np.float32)
    x[2, 0] = np.nan
    np.save(tmp_path / "feats.npy", x)
    assert (
        _error(_file(tmp_path, "0 1\n"), features=tmp_path / "feats.npy")
        == "feats.npy: features contain NaN or Inf"
    )


def test_bad_text_labels(tmp_path):
    edges = _file(tmp_path, "0 1\n")
    labels = _file(tmp_path, "0 1\n1 x\n", "labels.txt")
    assert _error(edges, labels=labels) == "labels.txt:2: expected a node ID and an integer label, got '1 x'"
    labels = _file(tmp_path, "0 1\n1 -3\n", "labels.txt")
    assert _error(edges, labels=labels) == "labels.txt:2: label -3 is negative (use -1 for unlabelled)"
    labels = _file(tmp_path, "-1 1\n", "labels.txt")
    assert _error(edges, labels=labels) == "labels.txt:1: negative node ID -1"


def test_empty_graph(tmp_path):
    assert _error(_file(tmp_path, "# nothing here\n\n")) == "edges.txt: graph is empty: it has no nodes"


def test_missing_files(tmp_path):
    assert _error(tmp_path / "none.txt") == f"no such file or directory: {tmp_path / 'none.txt'}"
    edges = _file(tmp_path, "0 1\n")
    message = _error(edges, features=tmp_path / "f.npy")
    assert message == f"no such file or directory: {tmp_path / 'f.npy'}"


def _never_whole(monkeypatch):
    """Out of core, the edge list is read in chunks: reading it whole fails the test."""

    def whole(path, expected, **kw):
        if expected == "two integer node IDs":
            raise AssertionError(f"{path.name} read whole")
        return real(path, expected, **kw)

    real = edgelist.parse_pairs
    monkeypatch.setattr(edgelist, "parse_pairs", whole)


@pytest.mark.parametrize("node_files", ["none", "features", "text labels"])
def test_out_of_core_reads_the_edges_in_chunks_and_gives_the_same_graph(tmp_path, monkeypatch, node_files):
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, 3000, (40_000, 2))
    path = _file(tmp_path, "\n".join(f"{a} {b}" for a, b in pairs.tolist()))
    kw = {}
    if node_files == "features":
        np.save(tmp_path / "feats.npy", rng.random((3100, 4), dtype=np.float32))  # isolated nodes at the end
        kw["features"] = tmp_path / "feats.npy"
    elif node_files == "text labels":
        _file(tmp_path, "".join(f"{v} {v % 3}\n" for v in range(0, 3200, 7)), "labels.txt")  # past the top ID
        kw["labels"] = tmp_path / "labels.txt"
    whole = load_edgelist(path, **kw)
    monkeypatch.setattr(edgelist, "CHUNK_BYTES", 4096)  # 50 chunks
    _never_whole(monkeypatch)
    streamed = load_edgelist(path, csr=CsrOnDisk(tmp_path / "csr", 1 << 20), **kw)
    assert type(streamed.indices).__name__ == "memmap"
    for key in ("indptr", "indices", "x", "y", "train_mask", "val_mask", "test_mask"):
        np.testing.assert_array_equal(getattr(streamed, key), getattr(whole, key), err_msg=key)


def test_out_of_core_bad_ids_are_named_by_line(tmp_path, monkeypatch):
    _never_whole(monkeypatch)
    csr = CsrOnDisk(tmp_path / "csr", 1 << 20)
    assert _error(_file(tmp_path, "0 1\n\n2 -4\n"), csr=csr) == "edges.txt:3: negative node ID -4"
    np.save(tmp_path / "feats.npy", np.ones((5, 2), dtype=np.float32))
    path = _file(tmp_path, "0 1\n# c\n1 7\n")
    message = _error(path, features=tmp_path / "feats.npy", csr=csr)
    assert message == "edges.txt:3: node ID 7 is outside the node range [0, 5)"
    assert not (tmp_path / "csr").exists()
