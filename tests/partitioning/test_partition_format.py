"""The partition directory: atomic writes, versioning, checksums, and one-line errors for bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from distgnn.data.graph import Graph
from distgnn.errors import DistGNNError
from distgnn.partitioning import load_meta, load_part, partition_graph, reassemble, write_partition
from distgnn.partitioning.format import PartitionWriter


def _fail_after(monkeypatch, calls: int, exc: BaseException) -> None:
    real = PartitionWriter.write_array
    count = {"n": 0}

    def write_array(self, part_id, name, array):
        count["n"] += 1
        if count["n"] > calls:
            raise exc
        real(self, part_id, name, array)

    monkeypatch.setattr(PartitionWriter, "write_array", write_array)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing_behind(toy_graph, tmp_path, monkeypatch, exc):
    parent = tmp_path / "runs"
    parent.mkdir()
    _fail_after(monkeypatch, 20, exc)  # dies in the middle of part 1
    with pytest.raises(type(exc)):
        partition_graph(toy_graph, 3, parent / "parts", method="random", progress=False)
    assert list(parent.iterdir()) == []


def test_failed_overwrite_keeps_the_old_partition(toy_graph, tmp_path, monkeypatch):
    out = tmp_path / "parts"
    old = partition_graph(toy_graph, 2, out, method="contiguous", progress=False)
    _fail_after(monkeypatch, 5, OSError("disk full"))
    with pytest.raises(OSError):
        partition_graph(toy_graph, 3, out, method="random", overwrite=True, progress=False)
    assert load_meta(out) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts"]


def test_existing_target_needs_overwrite(toy_graph, tmp_path):
    out = tmp_path / "parts"
    partition_graph(toy_graph, 2, out, method="contiguous", progress=False)
    with pytest.raises(DistGNNError) as err:
        partition_graph(toy_graph, 3, out, method="random", progress=False)
    assert (
        str(err.value)
        == f"output directory {out} already exists and is not empty (pass --force to replace it)"
    )
    meta = partition_graph(toy_graph, 3, out, method="random", overwrite=True, progress=False)
    assert load_meta(out) == meta and meta["num_parts"] == 3
    assert not (out / "part-3").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["parts"]


def test_empty_existing_directory_is_fine(toy_graph, tmp_path):
    out = tmp_path / "parts"
    out.mkdir()
    partition_graph(toy_graph, 2, out, method="contiguous", progress=False)
    assert load_meta(out)["num_parts"] == 2


def test_target_that_is_a_file_is_refused(toy_graph, tmp_path):
    out = tmp_path / "parts"
    out.write_text("x")
    with pytest.raises(DistGNNError, match=r"exists and is not a directory$"):
        partition_graph(toy_graph, 2, out, method="contiguous", progress=False)


def test_unknown_format_version_is_refused(toy_graph, tmp_path):
    out = tmp_path / "parts"
    partition_graph(toy_graph, 2, out, method="contiguous", progress=False)
    meta = json.loads((out / "meta.json").read_text())
    meta["version"] = 7
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DistGNNError) as err:
        load_part(out, 0)
    assert str(err.value) == "partition format version 7 is not supported (this distgnn reads version 1)"


def test_foreign_meta_json_is_refused(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"format": "dgl", "version": 1}))
    with pytest.raises(DistGNNError) as err:
        load_meta(tmp_path)
    assert (
        str(err.value)
        == f"{tmp_path / 'meta.json'} is not a distgnn partition (format field is not 'distgnn-partition')"
    )


def test_checksum_mismatch_names_the_file(toy_graph, tmp_path):
    out = tmp_path / "parts"
    partition_graph(toy_graph, 2, out, method="contiguous", progress=False)
    path = out / "part-1" / "x.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # flip bits of the last feature value
    path.write_bytes(bytes(raw))
    with pytest.raises(DistGNNError) as err:
        load_part(out, 1)
    assert str(err.value) == f"checksum mismatch for {path}: the file is corrupt or was modified"
    load_part(out, 0)  # the other part is intact
    assert load_part(out, 1, verify=False).x.shape == (300, 5)


def test_missing_things(toy_graph, tmp_path):
    with pytest.raises(DistGNNError) as err:
        load_meta(tmp_path / "nope")
    assert str(err.value) == f"partition directory {tmp_path / 'nope'} does not exist"
    with pytest.raises(DistGNNError) as err:
        load_meta(tmp_path)
    assert str(err.value) == f"{tmp_path} is not a distgnn partition directory: meta.json is missing"
    out = tmp_path / "parts"
    partition_graph(toy_graph, 2, out, method="contiguous", progress=False)
    with pytest.raises(DistGNNError) as err:
        load_part(out, 2)
    assert str(err.value) == f"part 2 does not exist: {out} has parts 0..1"
    (out / "part-0" / "send_idx.npy").unlink()
    with pytest.raises(DistGNNError) as err:
        load_part(out, 0)
    assert str(err.value) == f"partition file {out / 'part-0' / 'send_idx.npy'} is missing"


def test_empty_graph_is_refused(tmp_path):
    empty = Graph(
        indptr=np.zeros(1, dtype=np.int64),
        indices=np.zeros(0, dtype=np.int64),
        x=np.zeros((0, 3), dtype=np.float32),
        y=np.zeros(0, dtype=np.int64),
        train_mask=np.zeros(0, dtype=bool),
        val_mask=np.zeros(0, dtype=bool),
        test_mask=np.zeros(0, dtype=bool),
        num_classes=2,
    )
    with pytest.raises(DistGNNError) as err:
        partition_graph(empty, 2, tmp_path / "parts", progress=False)
    assert str(err.value) == "graph is empty: it has no nodes"
    assert list(tmp_path.iterdir()) == []


def test_more_parts_than_nodes_writes_nothing(make_graph, tmp_path):
    with pytest.raises(
        DistGNNError, match=re.escape("cannot split 10 nodes into 12 parts: use at most 10 parts")
    ):
        partition_graph(make_graph(num_nodes=10, num_edges=30), 12, tmp_path / "parts", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_write_partition_from_parts(toy_graph, tmp_path):
    src = tmp_path / "a"
    meta = partition_graph(toy_graph, 2, src, method="metis", progress=False)
    parts = [load_part(src, p, mmap=False) for p in range(2)]
    keep = {k: v for k, v in meta.items() if k not in ("format", "version", "checksums")}
    copy = write_partition(tmp_path / "b", parts, keep)
    assert copy["checksums"] == meta["checksums"]  # same bytes, same hashes
    np.testing.assert_array_equal(reassemble(tmp_path / "b").indices, toy_graph.indices)
