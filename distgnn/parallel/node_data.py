"""The rows a rank trains on: features, labels and split masks, on the training device.

Built from a :class:`distgnn.partitioning.Part` (a graph-parallel rank's owned rows, or the one part of a
1-part directory a pipeline stage holds whole). ``keys`` are the rows' original node ids: dropout masks
are keyed by them, so they do not depend on the partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgnn.errors import DistGNNError
from distgnn.models.inputs import Input, SparseRows


@dataclass
class NodeData:
    """This rank's owned rows: features, labels, split masks (all on the training device)."""

    x: Tensor
    y: Tensor
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor
    num_classes: int
    keys: Tensor  # int64 [rows]: original node id of each row

    @classmethod
    def from_arrays(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        train_mask: np.ndarray,
        val_mask: np.ndarray,
        test_mask: np.ndarray,
        num_classes: int,
        keys: np.ndarray,
        *,
        device: torch.device | str = "cpu",
        feature_norm: str = "none",
    ) -> NodeData:
        # Copied out of the read-only memory-mapped partition into memory torch allocates (so a large one
        # is advised onto huge pages when THP_MEM_ALLOC_ENABLE is set, as the distgnn command does: the
        # aggregation gathers random rows of it).
        feats = torch.empty(tuple(x.shape), dtype=torch.float32)
        feats.numpy()[...] = x
        feats = feats.to(device)
        if feature_norm == "row":
            feats = row_normalize(feats)
        elif feature_norm != "none":
            raise DistGNNError(f"feature-norm must be one of none, row, got {feature_norm!r}")

        def t(a: np.ndarray, dtype: torch.dtype) -> Tensor:
            return torch.from_numpy(np.array(a)).to(device=device, dtype=dtype)

        return cls(
            x=feats,
            y=t(y, torch.int64),
            train_mask=t(train_mask, torch.bool),
            val_mask=t(val_mask, torch.bool),
            test_mask=t(test_mask, torch.bool),
            num_classes=int(num_classes),
            keys=t(keys, torch.int64),
        )

    def masks(self) -> list[Tensor]:
        """train, val and test masks, in that order."""
        return [self.train_mask, self.val_mask, self.test_mask]

    @classmethod
    def from_part(
        cls, part: Any, *, device: torch.device | str = "cpu", feature_norm: str = "none"
    ) -> NodeData:
        """From a :class:`distgnn.partitioning.Part` (or anything with its fields)."""
        return cls.from_arrays(
            part.x,
            part.y,
            part.train_mask,
            part.val_mask,
            part.test_mask,
            part.num_classes,
            part.orig_ids,
            device=device,
            feature_norm=feature_norm,
        )


SPARSE_INPUT_DENSITY = 0.1  # below this fraction of non-zeros, features are fed as sparse CSR


def model_input(x: Tensor) -> Input:
    """The features as the first layer reads them: sparse when mostly zero (bag-of-words), else dense.

    Same values either way; sparse makes input dropout and the first linear map ~1/density cheaper.
    """
    if x.numel() and int(torch.count_nonzero(x)) <= SPARSE_INPUT_DENSITY * x.numel():
        return SparseRows.from_dense(x)
    return x


def row_normalize(x: Tensor) -> Tensor:
    """Scale each row to sum 1 (the GCN paper's preprocessing); all-zero rows stay zero.

    It is a per-node operation, so each rank normalises its own rows and the result equals normalising
    the whole graph.
    """
    if bool((x < 0).any()):
        raise DistGNNError("--feature-norm row needs non-negative features (found negative values)")
    s = x.sum(dim=1, keepdim=True)
    return torch.where(s > 0, x / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(x))
