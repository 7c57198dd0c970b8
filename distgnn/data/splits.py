"""Seeded train/val/test masks for sources that bring labels but no split. Only labelled nodes are used."""

from __future__ import annotations

import numpy as np

from distgnn.errors import DistGNNError

Masks = tuple[np.ndarray, np.ndarray, np.ndarray]


def _count(value: float, total: int, what: str) -> int:
    """PyG's convention: an int is a node count, a float a fraction of ``total``."""
    if isinstance(value, float):
        if not 0.0 <= value <= 1.0:
            raise DistGNNError(f"{what} must be a count or a fraction in [0, 1], got {value}")
        return int(round(value * total))
    if value < 0:
        raise DistGNNError(f"{what} must not be negative, got {value}")
    return int(value)


def _masks_from_order(n: int, order: np.ndarray, sizes: tuple[int, int, int]) -> Masks:
    masks = tuple(np.zeros(n, dtype=bool) for _ in range(3))
    start = 0
    for mask, size in zip(masks, sizes, strict=True):
        mask[order[start : start + size]] = True
        start += size
    return masks  # type: ignore[return-value]


def random_split(
    y: np.ndarray, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> Masks:
    """Disjoint masks holding the given fractions of the labelled nodes (y >= 0), chosen at random."""
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) > 1.0 + 1e-9:
        raise DistGNNError(
            f"split fractions must be three non-negative numbers summing to <= 1, got {fractions}"
        )
    labelled = np.flatnonzero(y >= 0)
    order = np.random.default_rng(seed).permutation(labelled)
    m = labelled.shape[0]
    n_train = int(round(fractions[0] * m))
    n_val = min(int(round(fractions[1] * m)), m - n_train)
    rest = m - n_train - n_val
    n_test = rest if abs(sum(fractions) - 1.0) < 1e-9 else min(int(round(fractions[2] * m)), rest)
    return _masks_from_order(y.shape[0], order, (n_train, n_val, n_test))


def per_class_split(
    y: np.ndarray,
    num_train_per_class: int = 20,
    num_val: float = 500,
    num_test: float = 1000,
    seed: int = 0,
) -> Masks:
    """Planetoid/PyG-style split: ``num_train_per_class`` random labelled nodes of each class for training,
    then ``num_val`` and ``num_test`` (counts, or fractions of the labelled nodes) from the rest."""
    if num_train_per_class < 0:
        raise DistGNNError(f"train nodes per class must not be negative, got {num_train_per_class}")
    labelled = np.flatnonzero(y >= 0)
    m = labelled.shape[0]
    order = np.random.default_rng(seed).permutation(labelled)
    # Rank of each node within its class, in the random order: stable sort by class keeps that order.
    by_class = order[np.argsort(y[order], kind="stable")]
    classes = y[by_class]
    first = np.searchsorted(classes, classes, side="left")
    in_train = (np.arange(m) - first) < num_train_per_class
    train_nodes = by_class[in_train]
    rest = order[~np.isin(order, train_nodes, assume_unique=True)]
    n_val = min(_count(num_val, m, "val size"), rest.shape[0])
    n_test = min(_count(num_test, m, "test size"), rest.shape[0] - n_val)
    train = np.zeros(y.shape[0], dtype=bool)
    train[train_nodes] = True
    _, val, test = _masks_from_order(y.shape[0], rest, (0, n_val, n_test))
    return train, val, test
