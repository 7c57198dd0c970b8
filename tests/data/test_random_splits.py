"""Seeded splits over labelled nodes only."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.data.splits import per_class_split, random_split
from distgnn.errors import DistGNNError


def test_random_split_uses_labelled_nodes_only():
    y = np.array([-1, 0, 1, 1, 0, -1, 2, 2, 0, 1, 2, 0])
    train, val, test = random_split(y, (0.5, 0.25, 0.25), seed=1)
    assert (int(train.sum()), int(val.sum()), int(test.sum())) == (5, 2, 3)
    assert not np.any((train | val | test) & (y < 0))
    assert not np.any(train & val) and not np.any(val & test) and not np.any(train & test)


def test_per_class_split_counts_and_fractions():
    y = np.repeat(np.arange(3), [10, 20, 30])
    train, val, test = per_class_split(y, 4, num_val=0.5, num_test=12, seed=0)
    assert np.bincount(y[train], minlength=3).tolist() == [4, 4, 4]
    assert (int(val.sum()), int(test.sum())) == (30, 12)
    assert not np.any(train & val) and not np.any(val & test)


def test_per_class_split_caps_at_available_nodes():
    y = np.array([0, 0, 1, -1])
    train, val, test = per_class_split(y, 5, num_val=10, num_test=10)
    assert train.tolist() == [True, True, True, False] and not val.any() and not test.any()


def test_bad_fractions():
    with pytest.raises(DistGNNError) as err:
        random_split(np.zeros(4, dtype=np.int64), (0.8, 0.3, 0.1))
    assert (
        str(err.value)
        == "split fractions must be three non-negative numbers summing to <= 1, got (0.8, 0.3, 0.1)"
    )
    with pytest.raises(DistGNNError) as err:
        per_class_split(np.zeros(4, dtype=np.int64), 1, num_val=1.5)
    assert str(err.value) == "val size must be a count or a fraction in [0, 1], got 1.5"
