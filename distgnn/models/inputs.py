"""Sparse input features: bag-of-words features are ~1% non-zero, so the first layer reads them sparse.

:class:`SparseRows` holds the features as CSR plus the CSR of their transpose (built once), so both the
product ``x @ W`` and its weight gradient ``x^T @ grad`` are sparse-dense products; torch's own autograd
for a CSR operand transposes the matrix on every backward, which costs more than the dense product.
Dropout acts on the stored values (zeros stay zero either way, so it is the same operation as dense
dropout, as in the GCN paper's sparse dropout). It runs :func:`distgnn.kernels.dropout` (counter-based
mask regenerated in the backward). With a :class:`~distgnn.models.masks.MaskKey` the mask is keyed by
global node id (a stored value at (row, col) draws the counter ``id[row] * F + col``, the same as the
dense element), else seeded from torch's global RNG.

Models call :func:`dropout`, :func:`matmul`, :func:`linear` and :func:`dense` on their first-layer
input; each also accepts a plain dense tensor, so a model never needs to know which it got.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from distgnn.kernels import dropout as _dropout
from distgnn.kernels import pool
from distgnn.models.masks import MaskKey


@dataclass(frozen=True)
class SparseRows:
    """A [rows, features] matrix stored as CSR, with the transpose's CSR structure and value order."""

    crow: Tensor
    col: Tensor
    values: Tensor
    shape: tuple[int, int]
    t_crow: Tensor
    t_col: Tensor
    t_perm: Tensor  # values of the transpose, in its CSR order, are values[t_perm]
    # (rows, keys) of the last value_keys call: the rows' global ids do not change between epochs
    _keys: list = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_dense(cls, x: Tensor) -> SparseRows:
        n, f = x.shape
        with warnings.catch_warnings():  # torch flags its (long-standing) CSR support as "beta"
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            csr = x.to_sparse_csr()
        crow, col, values = csr.crow_indices(), csr.col_indices(), csr.values()
        row = torch.repeat_interleave(torch.arange(n, device=x.device), crow.diff())
        t_perm = torch.argsort(col * n + row, stable=True)
        t_crow = torch.zeros(f + 1, dtype=crow.dtype, device=x.device)
        t_crow[1:] = torch.cumsum(torch.bincount(col, minlength=f), 0)
        return cls(crow, col, values, (n, f), t_crow, row[t_perm].to(col.dtype), t_perm)

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    def with_values(self, values: Tensor) -> SparseRows:
        return SparseRows(self.crow, self.col, values, self.shape, self.t_crow, self.t_col, self.t_perm)

    def csr(self) -> Tensor:
        return _csr(self.crow, self.col, self.values, self.shape)

    def csr_t(self) -> Tensor:
        shape_t = (self.shape[1], self.shape[0])
        # index_select: the same gather as values[t_perm], several times faster than advanced indexing
        return _csr(self.t_crow, self.t_col, self.values.index_select(0, self.t_perm), shape_t)

    def to_dense(self) -> Tensor:
        return self.csr().to_dense()

    def value_rows(self) -> Tensor:
        """The row of every stored value."""
        return torch.repeat_interleave(torch.arange(self.shape[0], device=self.crow.device), self.crow.diff())

    def value_keys(self, rows: Tensor) -> Tensor:
        """Each stored value's dense-element counter ``rows[row] * F + col``; cached for the last ``rows``
        tensor (the same object every epoch), so the sparse dropout does not rebuild it per epoch."""
        if not self._keys or self._keys[0] is not rows:
            self._keys[:] = [rows, rows[self.value_rows()] * self.shape[1] + self.col]
        return self._keys[1]


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """A CSR tensor from trusted parts (built once from a valid CSR, so no invariant checks)."""
    return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class _SparseMatmul(torch.autograd.Function):
    """``x @ w`` for constant sparse ``x``; backward ``x^T @ grad`` through the stored transpose.

    Under autocast the product runs in ``x``'s dtype (torch has no bfloat16 CSR product on CPU; it reads
    each stored feature once) and its output is cast to autocast's dtype, as a dense product's would be.
    """

    @staticmethod
    def forward(ctx, w: Tensor, x: SparseRows) -> Tensor:
        ctx.x = x
        device = w.device.type
        if not torch.is_autocast_enabled(device):
            return x.csr() @ w
        with torch.autocast(device, enabled=False):
            out = x.csr() @ w.to(x.dtype)
        return out.to(torch.get_autocast_dtype(device))

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.x.csr_t() @ grad.to(ctx.x.dtype).contiguous(), None


Input = Tensor | SparseRows


def dropout(
    x: Input,
    p: float,
    training: bool,
    key: MaskKey | None = None,
    *,
    relu: bool = False,
    bias: Tensor | None = None,
) -> Input:
    """Dropout (``impl="auto"``) for dense or sparse rows (sparse: on the stored values), optionally of
    ``relu(x + bias)`` in the same pass (dense only). ``key``: mask seed and rows' global ids."""
    seed = None if key is None else key.seed
    if not isinstance(x, SparseRows):
        keys = None if key is None else key.rows
        return _dropout(x, p, training=training, relu=relu, bias=bias, seed=seed, keys=keys)
    if not training or p == 0.0:
        return x
    keys = None if key is None else x.value_keys(key.rows)
    return x.with_values(_dropout(x.values, p, seed=seed, keys=keys))


def matmul(x: Input, w: Tensor) -> Tensor:
    """``x @ w``."""
    if isinstance(x, SparseRows):
        return _SparseMatmul.apply(w, x)
    if x.dim() == 2 and x.device.type == "cpu" and w.dim() == 2:
        autocast = torch.is_autocast_enabled("cpu")
        if x.dtype == (torch.get_autocast_dtype("cpu") if autocast else w.dtype):
            return _PooledMatmul.apply(x, w)
    return x @ w


class _PooledMatmul(torch.autograd.Function):
    """``x @ w`` with the row-sized results (the product, ``x``'s gradient) in the kernels' buffer pool:
    the products autograd's ``mm`` computes (under autocast: with ``w`` cast to ``x``'s dtype and its
    gradient cast back, as autocast does), without faulting fresh memory in every epoch."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor) -> Tensor:  # type: ignore[override]
        wx = w.to(x.dtype)
        ctx.save_for_backward(x, wx)
        ctx.w_dtype = w.dtype
        return pool.mm(x, wx)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, wx = ctx.saved_tensors
        g_x = pool.mm(grad, wx.t()) if ctx.needs_input_grad[0] else None
        g_w = (x.t() @ grad).to(ctx.w_dtype) if ctx.needs_input_grad[1] else None
        return g_x, g_w


def linear(x: Input, lin: nn.Linear) -> Tensor:
    """``lin(x)``."""
    if not isinstance(x, SparseRows):
        return lin(x)
    out = matmul(x, lin.weight.t())
    return out if lin.bias is None else out + lin.bias.to(out.dtype)  # in autocast's dtype, as lin(x)


def dense(x: Input) -> Tensor:
    return x.to_dense() if isinstance(x, SparseRows) else x


def width(x: Input) -> int:
    return int(x.shape[1])
