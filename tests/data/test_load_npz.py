"""The .npz schema: Cora/CiteSeer, a save/load round trip, and one exact message per bad input."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.data import Graph, load_npz, save_npz
from distgnn.errors import DistGNNError


def _arrays(n: int = 4) -> dict[str, np.ndarray]:
    return {
        "edge_src": np.array([0, 1, 2, 2], dtype=np.int64),
        "edge_dst": np.array([1, 2, 3, 3], dtype=np.int64),
        "x": np.arange(n * 2, dtype=np.float32).reshape(n, 2),
        "y": np.array([0, 1, -1, 2][:n], dtype=np.int64),
        "train_mask": np.array([True, False, False, False][:n]),
        "val_mask": np.array([False, True, False, False][:n]),
        "test_mask": np.array([False, False, False, True][:n]),
    }


def _write(tmp_path, **changes):
    arrays = _arrays()
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "g.npz"
    np.savez(path, **arrays)
    return path


def _error(path) -> str:
    with pytest.raises(DistGNNError) as err:
        load_npz(path)
    return str(err.value)


@pytest.mark.parametrize(
    ("name", "n", "e", "classes", "sizes", "unlabelled"),
    [("cora", 2708, 10556, 7, (140, 500, 1000), 0), ("citeseer", 3327, 9104, 6, (120, 500, 1000), 15)],
)
def test_planetoid_datasets(shared_datasets, name, n, e, classes, sizes, unlabelled):
    g = load_npz(shared_datasets / f"{name}.npz")
    assert (g.name, g.num_nodes, g.num_edges, g.num_classes) == (name, n, e, classes)
    assert (int(g.train_mask.sum()), int(g.val_mask.sum()), int(g.test_mask.sum())) == sizes
    no_label = g.y == -1
    assert int(no_label.sum()) == unlabelled
    assert not np.any(no_label & (g.train_mask | g.val_mask | g.test_mask))
    src, dst = g.edges()
    assert not np.any(src == dst)
    assert np.array_equal(np.sort(dst * n + src), np.sort(src * n + dst))  # symmetric
    raw = np.load(shared_datasets / f"{name}.npz")
    assert np.array_equal(g.x, raw["x"]) and np.array_equal(g.y, raw["y"])


def test_round_trip_is_exact_and_atomic(tmp_path):
    g = load_npz(_write(tmp_path))
    assert g.num_edges == 6 and g.num_classes == 3
    out = tmp_path / "out.npz"
    save_npz(g, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npz", "out.npz"]  # no temp file left
    h = load_npz(out)
    for field in ("indptr", "indices", "x", "y", "train_mask", "val_mask", "test_mask"):
        assert np.array_equal(getattr(g, field), getattr(h, field)), field
    assert (h.num_classes, h.name) == (3, "out")


def test_saved_num_classes_survives_an_unused_top_class(tmp_path):
    g = load_npz(_write(tmp_path))
    g = Graph(g.indptr, g.indices, g.x, g.y, g.train_mask, g.val_mask, g.test_mask, num_classes=5)
    save_npz(g, tmp_path / "five.npz", compress=True)
    assert load_npz(tmp_path / "five.npz").num_classes == 5


def test_save_into_missing_directory(tmp_path):
    g = load_npz(_write(tmp_path))
    with pytest.raises(DistGNNError) as err:
        save_npz(g, tmp_path / "nope" / "g.npz")
    assert str(err.value) == f"no such directory: {tmp_path / 'nope'}"


def test_missing_file(tmp_path):
    assert _error(tmp_path / "absent.npz") == f"no such file or directory: {tmp_path / 'absent.npz'}"


def test_missing_array(tmp_path):
    message = _error(_write(tmp_path, x=None, val_mask=None))
    assert message == (
        "g.npz: missing array(s) x, val_mask "
        "(needs edge_src, edge_dst, x, y, train_mask, val_mask, test_mask)"
    )


def test_not_a_zip(tmp_path):
    path = tmp_path / "g.npz"
    path.write_text("hello")
    assert _error(path) == "g.npz: not a .npz archive"


def test_pickled_array_is_refused(tmp_path):
    message = _error(_write(tmp_path, y=np.array([0, 1, None, 2], dtype=object)))
    assert message.startswith("g.npz: cannot read arrays without pickle (")


def test_label_rows_must_match_nodes(tmp_path):
    assert _error(_write(tmp_path, y=np.array([0, 1, 2]))) == "g.npz: y has 3 rows but the graph has 4 nodes"


def test_mask_rows_must_match_nodes(tmp_path):
    message = _error(_write(tmp_path, test_mask=np.zeros(5, dtype=bool)))
    assert message == "g.npz: test_mask has 5 rows but the graph has 4 nodes"


def test_nan_features(tmp_path):
    x = _arrays()["x"]
    x[1, 1] = np.nan
    assert _error(_write(tmp_path, x=x)) == "g.npz: x contain NaN or Inf"


def test_inf_features(tmp_path):
    x = _arrays()["x"]
    x[0, 0] = np.inf
    assert _error(_write(tmp_path, x=x)) == "g.npz: x contain NaN or Inf"


def test_out_of_range_edge(tmp_path):
    message = _error(_write(tmp_path, edge_dst=np.array([1, 2, 3, 4])))
    assert message == "g.npz: edge endpoint 4 is outside the node range [0, 4)"


def test_empty_graph(tmp_path):
    empty = {k: v[:0] for k, v in _arrays().items()}
    assert _error(_write(tmp_path, **empty)) == "g.npz: graph is empty: it has no nodes"


def test_unlabelled_node_in_a_mask(tmp_path):
    message = _error(_write(tmp_path, val_mask=np.array([False, False, True, False])))
    assert message == "g.npz: val_mask contains nodes without a label (y = -1)"


def test_integer_masks_are_accepted_bad_masks_are_not(tmp_path):
    g = load_npz(_write(tmp_path, train_mask=np.array([1, 0, 0, 0])))
    assert g.train_mask.dtype == bool and g.train_mask.tolist() == [True, False, False, False]
    message = _error(_write(tmp_path, train_mask=np.array([0.5, 0, 0, 0])))
    assert message == "g.npz: train_mask must be a bool mask, got dtype float64"
