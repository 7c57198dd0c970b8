"""The OGB raw directory layout, on a tiny fake dataset written in tmp_path."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from distgnn.data import load_ogb
from distgnn.errors import DistGNNError


def _gz(path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write("".join(f"{line}\n" for line in lines))


def _fake_ogb(tmp_path, *, labels=None, split_names=("time",), feats=True):
    root = tmp_path / "ogbn_fake"
    raw = root / "raw"
    _gz(raw / "edge.csv.gz", ["0,1", "1,2", "2,0", "3,4", "4,4", "0,1"])
    if feats:
        _gz(raw / "node-feat.csv.gz", [f"{i}.5,{-i}" for i in range(5)])
    _gz(raw / "node-label.csv.gz", labels or ["3", "0", "1", "2", "0"])
    _gz(raw / "num-node-list.csv.gz", ["5"])
    for name in split_names:
        for part, ids in (("train", ["0", "1"]), ("valid", ["2"]), ("test", ["3", "4"])):
            _gz(root / "split" / name / f"{part}.csv.gz", ids)
    return root


def _error(path) -> str:
    with pytest.raises(DistGNNError) as err:
        load_ogb(path)
    return str(err.value)


def test_fake_ogb_dataset(tmp_path):
    root = _fake_ogb(tmp_path)
    g = load_ogb(root)
    assert (g.name, g.num_nodes, g.num_edges, g.num_classes) == ("ogbn_fake", 5, 8, 4)
    src, dst = g.edges()
    assert set(zip(src.tolist(), dst.tolist(), strict=True)) == {
        (0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0), (3, 4), (4, 3),
    }  # fmt: skip
    assert g.x.dtype == np.float32 and g.x[2].tolist() == [2.5, -2.0]
    assert g.y.tolist() == [3, 0, 1, 2, 0]
    assert g.train_mask.tolist() == [True, True, False, False, False]
    assert g.val_mask.tolist() == [False, False, True, False, False]
    assert g.test_mask.tolist() == [False, False, False, True, True]


def test_raw_dir_is_accepted_and_nan_labels_are_unlabelled(tmp_path):
    root = _fake_ogb(tmp_path, labels=["3", "0", "1", "nan", "0"], feats=False)
    (root / "split" / "time" / "test.csv.gz").unlink()
    _gz(root / "split" / "time" / "test.csv.gz", ["4"])
    g = load_ogb(root / "raw")
    assert g.y.tolist() == [3, 0, 1, -1, 0] and g.x.shape == (5, 1)


def test_errors(tmp_path):
    assert _error(tmp_path / "nope") == f"no such file or directory: {tmp_path / 'nope'}"
    assert (
        _error(tmp_path) == f"{tmp_path}: not an OGB dataset directory (expected raw/ and split/ inside it)"
    )
    root = _fake_ogb(tmp_path, split_names=("a", "b"))
    assert _error(root) == f"{root / 'split'}: expected exactly one split directory, found a, b"


def test_row_mismatch_and_unlabelled_in_split(tmp_path):
    root = _fake_ogb(tmp_path, labels=["3", "0", "1", "2"])
    assert _error(root) == "node-label.csv.gz has 4 rows but the graph has 5 nodes"
    root = _fake_ogb(tmp_path, labels=["3", "0", "1", "nan", "0"])
    assert _error(root) == "ogbn_fake: test_mask contains nodes without a label (y = -1)"


def test_out_of_range_edge_and_split(tmp_path):
    root = _fake_ogb(tmp_path)
    _gz(root / "raw" / "edge.csv.gz", ["0,1", "1,9"])
    assert _error(root) == "edge.csv.gz: node ID 9 is out of range [0, 5)"
    root = _fake_ogb(tmp_path)
    _gz(root / "split" / "time" / "valid.csv.gz", ["5"])
    assert _error(root) == "valid.csv.gz: node ID 5 is out of range [0, 5)"


def test_nan_features(tmp_path):
    root = _fake_ogb(tmp_path)
    _gz(root / "raw" / "node-feat.csv.gz", ["1,2", "nan,0", "1,1", "0,0", "2,2"])
    assert _error(root) == "node-feat.csv.gz: features contain NaN or Inf"


def test_out_of_core_reads_edge_csv_gz_in_chunks_and_gives_the_same_graph(tmp_path, monkeypatch):
    from distgnn.data import edgelist, ogb
    from distgnn.data.csr_on_disk import CsrOnDisk

    root = _fake_ogb(tmp_path)
    rng = np.random.default_rng(0)
    _gz(root / "raw" / "edge.csv.gz", [f"{a},{b}" for a, b in rng.integers(0, 5, (3000, 2)).tolist()])
    whole = load_ogb(root)
    real = ogb.read_csv_gz

    def read_csv_gz(path, dtype):
        assert path.name != "edge.csv.gz", "edge.csv.gz read whole"
        return real(path, dtype)

    monkeypatch.setattr(ogb, "read_csv_gz", read_csv_gz)
    monkeypatch.setattr(edgelist, "CHUNK_BYTES", 1024)  # about 20 pieces of the decompressed text
    streamed = load_ogb(root, csr=CsrOnDisk(tmp_path / "csr", 1 << 20))
    for key in ("indptr", "indices", "x", "y", "train_mask", "val_mask", "test_mask"):
        np.testing.assert_array_equal(getattr(streamed, key), getattr(whole, key), err_msg=key)
    _gz(root / "raw" / "edge.csv.gz", ["0,1", "1,2", "2,7"])
    with pytest.raises(DistGNNError, match=r"edge\.csv\.gz:3: node ID 7 is outside the node range \[0, 5\)"):
        load_ogb(root, csr=CsrOnDisk(tmp_path / "csr2", 1 << 20))
