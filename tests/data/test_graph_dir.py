"""The graph directory (one memory-mapped .npy per schema key beside graph.json): the same Graph as the
.npz holding the same arrays, the same partition from the CLI, and one line naming the file per bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from distgnn.data import load_graph, load_graph_dir, load_npz, save_graph_dir, save_npz, synthetic_graph
from distgnn.data.graph_dir import open_npy
from distgnn.errors import DistGNNError
from distgnn.partitioning import load_meta

FIELDS = ("indptr", "indices", "x", "y", "train_mask", "val_mask", "test_mask")
NEEDS = "edge_src.npy, edge_dst.npy, x.npy, y.npy, train_mask.npy, val_mask.npy, test_mask.npy"


def _arrays() -> dict[str, np.ndarray]:
    return {
        "edge_src": np.array([0, 1, 2, 2], dtype=np.int64),
        "edge_dst": np.array([1, 2, 3, 3], dtype=np.int64),
        "x": np.arange(8, dtype=np.float32).reshape(4, 2),
        "y": np.array([0, 1, -1, 2], dtype=np.int64),
        "train_mask": np.array([True, False, False, False]),
        "val_mask": np.array([False, True, False, False]),
        "test_mask": np.array([False, False, False, True]),
    }


def _write(tmp_path, name="g", **changes):
    arrays = {**_arrays(), **changes}
    path = tmp_path / name
    save_graph_dir({k: v for k, v in arrays.items() if v is not None}, path)
    return path


def _error(path) -> str:
    with pytest.raises(DistGNNError) as err:
        load_graph_dir(path)
    assert "\n" not in str(err.value)
    return str(err.value)


def _assert_same_graph(a, b) -> None:
    for field in FIELDS:
        left, right = getattr(a, field), getattr(b, field)
        assert left.dtype == right.dtype and left.shape == right.shape, field
        assert np.ascontiguousarray(left).tobytes() == np.ascontiguousarray(right).tobytes(), field
    assert a.num_classes == b.num_classes


class Touch:
    """Unpickling it creates ``sentinel``: proof that a loader unpickled."""

    def __init__(self, sentinel) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (type(self.sentinel).touch, (self.sentinel,))


def test_round_trip_equals_the_npz_graph(tmp_path):
    g = synthetic_graph(num_nodes=300, num_edges=1500, num_features=5, num_classes=4, seed=3)
    save_graph_dir(g, tmp_path / "g")
    save_npz(g, tmp_path / "g.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g", "g.npz"]  # no temporary directory left
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == sorted(
        ["graph.json", "num_classes.npy", *NEEDS.split(", ")]
    )
    marker = json.loads((tmp_path / "g" / "graph.json").read_text())
    assert marker == {"format": "distgnn-graph", "version": 1}
    from_dir, from_npz = load_graph_dir(tmp_path / "g"), load_npz(tmp_path / "g.npz")
    _assert_same_graph(from_dir, from_npz)
    assert from_dir.name == from_npz.name == "g"
    _assert_same_graph(from_dir, g)
    _assert_same_graph(load_graph(str(tmp_path / "g"), progress=False), from_npz)  # dispatched on graph.json


def test_int32_edges_are_accepted_and_give_the_int64_graph(tmp_path):
    arrays = _arrays()
    np.savez(tmp_path / "g.npz", **arrays)
    narrow = {k: arrays[k].astype(np.int32) for k in ("edge_src", "edge_dst")}
    path = _write(tmp_path, **narrow)
    assert open_npy(path / "edge_src.npy").dtype == np.int32
    g = load_graph_dir(path)
    assert g.indices.dtype == np.int64 and g.num_edges == 6 and g.num_classes == 3
    _assert_same_graph(g, load_npz(tmp_path / "g.npz"))


def test_arrays_are_memory_mapped_not_read_into_memory(tmp_path):
    path = _write(tmp_path)
    assert all(isinstance(open_npy(path / f"{k}.npy"), np.memmap) for k in _arrays())
    g = load_graph_dir(path)
    assert not g.x.flags.writeable and not g.x.flags.owndata
    # The Graph's features are the file's pages: a write to the file after the load shows through.
    mapped = open_npy(path / "x.npy")
    with open(path / "x.npy", "r+b") as f:
        f.seek(mapped.offset + 4 * 3)  # x[1, 1]
        f.write(np.float32(-7.5).tobytes())
    assert g.x[1, 1] == -7.5


def test_partition_from_a_graph_dir_equals_the_npz(tmp_path, run_cli):
    g = synthetic_graph(num_nodes=200, num_edges=1000, num_features=4, num_classes=3, seed=5)
    save_graph_dir(g, tmp_path / "g")
    save_npz(g, tmp_path / "g.npz")
    metas = []
    for source, out in ((tmp_path / "g", tmp_path / "from-dir"), (tmp_path / "g.npz", tmp_path / "from-npz")):
        code, stdout, stderr = run_cli(
            ["partition", "--dataset", str(source), "--parts", "2", "--out", str(out), "--no-progress"]
        )
        assert code == 0, stderr
        assert stdout.startswith("wrote 2 parts of g (200 nodes, ")
        metas.append(load_meta(out))
    assert metas[0]["checksums"] == metas[1]["checksums"] and len(metas[0]["checksums"]) > 2
    assert metas[0]["dataset"] == metas[1]["dataset"] == "g"


def test_partition_with_a_bad_graph_dir_is_one_line(tmp_path, run_cli):
    path = _write(tmp_path)
    (path / "y.npy").unlink()
    code, stdout, stderr = run_cli(
        ["partition", "--dataset", str(path), "--parts", "2", "--out", str(tmp_path / "p"), "--no-progress"]
    )
    assert (code, stdout) == (2, "")
    assert stderr == f"distgnn partition: error: {path}: missing y.npy (a graph directory needs {NEEDS})\n"
    assert not (tmp_path / "p").exists()


def test_missing_required_files(tmp_path):
    path = _write(tmp_path)
    (path / "x.npy").unlink()
    (path / "val_mask.npy").unlink()
    assert _error(path) == f"{path}: missing x.npy, val_mask.npy (a graph directory needs {NEEDS})"
    assert _error(tmp_path / "absent") == f"no such file or directory: {tmp_path / 'absent'}"


def test_edge_length_mismatch(tmp_path):
    path = _write(tmp_path, edge_dst=np.array([1, 2, 3]))
    assert _error(path) == (
        f"{path / 'edge_src.npy'}, {path / 'edge_dst.npy'}: "
        "edge arrays must be 1-D and equally long, got src (4,) and dst (3,)"
    )


def test_ids_out_of_range_name_their_file(tmp_path):
    path = _write(tmp_path, edge_dst=np.array([1, 2, 3, 4]))
    assert _error(path) == f"{path / 'edge_dst.npy'}: edge endpoint 4 is outside the node range [0, 4)"
    path = _write(tmp_path, "neg", edge_src=np.array([0, -1, 2, 2], dtype=np.int32))
    assert _error(path) == f"{path / 'edge_src.npy'}: edge endpoint -1 is outside the node range [0, 4)"


def test_row_counts_must_match(tmp_path):
    path = _write(tmp_path, x=np.zeros((5, 2), np.float32))
    assert _error(path) == f"{path / 'x.npy'}: x has 5 rows but y and the masks have 4 (one row per node)"
    path = _write(tmp_path, "y", y=np.array([0, 1, 2]))
    assert _error(path) == f"{path / 'y.npy'}: y has 3 rows but the graph has 4 nodes"


@pytest.mark.parametrize("keep", [150, 130])  # x.npy: 128 header bytes + 32 data bytes
def test_truncated_npy(tmp_path, keep):
    path = _write(tmp_path)
    file = path / "x.npy"
    data = file.read_bytes()
    assert len(data) == 160
    file.write_bytes(data[:keep])
    assert _error(path) == f"{file}: truncated: {keep} bytes, but its header describes 160"
    file.write_bytes(data[:40])  # into the header
    assert _error(path).startswith(f"{file}: not a readable .npy file (")


def test_object_npy_is_refused_never_unpickled(tmp_path):
    sentinel = tmp_path / "pwned"
    path = _write(tmp_path)
    np.save(path / "y.npy", np.array([Touch(sentinel)] * 4, dtype=object), allow_pickle=True)
    assert _error(path) == (
        f"{path / 'y.npy'}: holds Python objects (dtype object), which only unpickling could read; refused"
    )
    (path / "y.npy").write_bytes(pickle.dumps(Touch(sentinel)))  # a bare pickle, no .npy header
    assert _error(path).startswith(f"{path / 'y.npy'}: not a readable .npy file (")
    assert not sentinel.exists()
    np.load(path / "y.npy", allow_pickle=True)  # the payload does run when something unpickles it
    assert sentinel.exists()


def test_marker_format_and_version(tmp_path):
    path = _write(tmp_path)
    marker = path / "graph.json"
    marker.write_text('{"format": "distgnn-partition", "version": 1}')
    expected = f"{marker} is not a distgnn-graph file (its format field is not 'distgnn-graph')"
    assert _error(path) == expected
    with pytest.raises(DistGNNError, match="^" + str(marker)):  # load_graph: the marker, not the OGB loader
        load_graph(str(path), progress=False)
    marker.write_text('{"format": "distgnn-graph", "version": 2}')
    assert _error(path) == f"{marker}: distgnn-graph version 2 is not supported (this distgnn reads 1)"
    marker.unlink()
    assert _error(path) == f"{marker} does not exist (expected a distgnn-graph file)"
    with pytest.raises(DistGNNError, match="not an OGB dataset directory"):  # no marker: OGB, as before
        load_graph(str(path), progress=False)


def test_failed_write_leaves_nothing_and_keeps_the_old_directory(tmp_path):
    bad = {**_arrays(), "y": np.array([0, 1, None, 2], dtype=object)}
    with pytest.raises(DistGNNError, match="^save_graph_dir: y: Object arrays cannot be saved"):
        save_graph_dir(bad, tmp_path / "g")
    assert list(tmp_path.iterdir()) == []
    path = _write(tmp_path)
    with pytest.raises(DistGNNError) as err:
        save_graph_dir(_arrays(), path)
    assert str(err.value) == f"{path} already exists and is not empty (overwrite=True replaces it)"
    with pytest.raises(DistGNNError):
        save_graph_dir(bad, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]
    assert load_graph_dir(path).y.tolist() == [0, 1, -1, 2]
    save_graph_dir({**_arrays(), "num_classes": np.int64(5)}, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]
    assert load_graph_dir(path).num_classes == 5


def test_num_classes_file(tmp_path):
    assert load_graph_dir(_write(tmp_path, num_classes=np.int64(6))).num_classes == 6
    path = _write(tmp_path, "two", num_classes=np.array([3, 4]))
    message = f"{path / 'num_classes.npy'}: num_classes must be one integer, got dtype int64 and shape (2,)"
    assert _error(path) == message
    path = _write(tmp_path, "small", num_classes=np.int64(2))
    assert _error(path) == f"{path / 'y.npy'}, {path / 'num_classes.npy'}: labels must be < num_classes=2"
