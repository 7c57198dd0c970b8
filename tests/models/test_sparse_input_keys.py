"""Sparse input dropout with node keys: the per-value counters are built once per row-key tensor and the
mask equals dense dropout's on the same global ids."""

from __future__ import annotations

import torch

from distgnn.models.inputs import SparseRows, dropout
from distgnn.models.masks import MaskKey


def test_keyed_sparse_dropout_matches_dense_and_caches_the_keys():
    torch.manual_seed(0)
    x = torch.rand(30, 12) * (torch.rand(30, 12) < 0.3)
    sparse = SparseRows.from_dense(x)
    ids = torch.randperm(1000)[:30]
    for seed in (3, 4):  # two epochs, same rows tensor
        key = MaskKey(seed, ids)
        got = dropout(sparse, 0.5, True, key).to_dense()
        assert torch.equal(got, dropout(x, 0.5, True, key))  # zeros stay zero either way
    keys = sparse.value_keys(ids)
    assert sparse.value_keys(ids) is keys  # cached for the same tensor
    other = ids.flip(0)
    fresh = sparse.value_keys(other)
    rows = sparse.value_rows()
    assert torch.equal(fresh, other[rows] * 12 + sparse.col)
    assert not torch.equal(fresh, keys)
