"""Partition -> load every part -> the original graph comes back exactly; every Part invariant holds."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.partitioning import load_meta, load_part, partition_graph, reassemble

METHODS = ["metis", "kaminpar", "random", "contiguous"]


def _partition(graph, tmp_path, method, parts=3, **kw):
    out = tmp_path / f"{method}-parts"
    meta = partition_graph(graph, parts, out, method=method, progress=False, **kw)
    return out, meta


@pytest.mark.parametrize("method", METHODS)
def test_roundtrip_reassembles_the_original_graph(toy_graph, tmp_path, method):
    out, meta = _partition(toy_graph, tmp_path, method)
    back = reassemble(out)
    for name in ("indptr", "indices", "x", "y", "train_mask", "val_mask", "test_mask"):
        a, b = getattr(back, name), getattr(toy_graph, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert back.num_classes == toy_graph.num_classes
    assert back.name == toy_graph.name == meta["dataset"]
    assert meta["num_nodes"] == toy_graph.num_nodes and meta["num_edges"] == toy_graph.num_edges


@pytest.mark.parametrize("method", METHODS)
def test_part_invariants(toy_graph, tmp_path, method):
    g = toy_graph
    out, meta = _partition(g, tmp_path, method, parts=4)
    P = meta["num_parts"]
    parts = [load_part(out, p) for p in range(P)]
    order = np.concatenate([p.orig_ids for p in parts])  # new id -> original id
    assert np.array_equal(np.sort(order), np.arange(g.num_nodes))

    # Independent degree oracle (self-loops excluded), by original ID.
    src, dst = g.edges()
    not_loop = src != dst
    in_deg = np.bincount(dst[not_loop], minlength=g.num_nodes)
    out_deg = np.bincount(src[not_loop], minlength=g.num_nodes)

    expected_start = 0
    for part in parts:
        start, end = part.node_range
        assert start == expected_start and part.n_owned > 0
        expected_start = end
        assert part.part_id < P and part.num_parts == P and part.num_classes == g.num_classes
        # Owned nodes keep their original relative order (stable relabelling).
        assert np.all(np.diff(part.orig_ids) > 0)
        # Halo: sorted, unique, remote, grouped by owner as halo_offsets says.
        h = np.asarray(part.halo_gids)
        assert np.all(np.diff(h) > 0)
        assert not np.any((h >= start) & (h < end))
        for q in range(P):
            rows = h[part.halo_offsets[q] : part.halo_offsets[q + 1]]
            qs, qe = meta["node_ranges"][q]
            assert np.all((rows >= qs) & (rows < qe))
        assert part.halo_offsets[0] == 0 and part.halo_offsets[-1] == part.n_halo
        # Local CSR = the original in-edges of each owned node, same order, sources mapped back.
        gids = np.concatenate([np.arange(start, end), h])
        got = order[gids[np.asarray(part.indices)]]
        want = np.concatenate([g.indices[g.indptr[o] : g.indptr[o + 1]] for o in part.orig_ids])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.diff(part.indptr), np.diff(g.indptr)[part.orig_ids])
        # Every halo row is actually used as a source.
        assert np.array_equal(
            np.unique(part.indices[part.indices >= part.n_owned]) - part.n_owned, np.arange(len(h))
        )
        # Global degrees for owned + halo rows.
        np.testing.assert_array_equal(part.in_degree, in_deg[order[gids]])
        np.testing.assert_array_equal(part.out_degree, out_deg[order[gids]])
        # Per-node payload.
        np.testing.assert_array_equal(part.x, g.x[part.orig_ids])
        np.testing.assert_array_equal(part.y, g.y[part.orig_ids])
        np.testing.assert_array_equal(part.train_mask, g.train_mask[part.orig_ids])

    # Send lists of p to q are exactly q's halo rows owned by p, in q's order, as p's local rows.
    for p, sender in enumerate(parts):
        assert sender.send_offsets[0] == 0 and sender.send_offsets[-1] == len(sender.send_idx)
        for q, receiver in enumerate(parts):
            sent = sender.send_idx[sender.send_offsets[q] : sender.send_offsets[q + 1]]
            wanted = receiver.halo_gids[receiver.halo_offsets[p] : receiver.halo_offsets[p + 1]]
            np.testing.assert_array_equal(sent + sender.node_range[0], wanted)
            assert np.all((sent >= 0) & (sent < sender.n_owned))
        assert len(sender.send_idx) == meta["part_sizes"][p]["n_send"]


def test_load_part_memory_maps_by_default(toy_graph, tmp_path):
    out, _ = _partition(toy_graph, tmp_path, "contiguous", parts=2)
    mapped = load_part(out, 1)
    assert isinstance(mapped.x, np.memmap) and not mapped.x.flags.writeable
    eager = load_part(out, 1, mmap=False, verify=False)
    assert not isinstance(eager.x, np.memmap)
    np.testing.assert_array_equal(mapped.indices, eager.indices)


def test_meta_records_the_request(toy_graph, tmp_path):
    out, meta = _partition(toy_graph, tmp_path, "metis", parts=3, objective="vol", seed=5)
    on_disk = load_meta(out)
    assert on_disk == meta
    assert (meta["format"], meta["version"]) == ("distgnn-partition", 1)
    assert (meta["method"], meta["objective"], meta["seed"]) == ("metis", "vol", 5)
    assert meta["feat_dim"] == 5 and meta["num_classes"] == 3
    assert len(meta["checksums"]) == 3 * 14
    assert sum(e - s for s, e in meta["node_ranges"]) == toy_graph.num_nodes
