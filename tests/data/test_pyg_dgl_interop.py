"""from_pyg / from_dgl: real PyG when installed, the install hint when not, both ways in every run."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from distgnn.data import from_dgl, from_pyg
from distgnn.errors import DistGNNError

EDGE_INDEX = torch.tensor([[0, 1, 1, 2, 3], [1, 0, 2, 2, 0]])
X = torch.arange(8, dtype=torch.float64).reshape(4, 2)
Y = torch.tensor([0, 1, 2, 1])
MASKS = [
    torch.tensor(m) for m in ([True, True, False, False], [False, False, True, False], [False] * 3 + [True])
]
UNDIRECTED = {(0, 1), (1, 0), (1, 2), (2, 1), (3, 0), (0, 3)}


def _edge_set(g) -> set[tuple[int, int]]:
    src, dst = g.edges()
    return set(zip(src.tolist(), dst.tolist(), strict=True))


def test_from_pyg():
    pyg_data = pytest.importorskip("torch_geometric.data")
    data = pyg_data.Data(
        edge_index=EDGE_INDEX, x=X, y=Y, train_mask=MASKS[0], val_mask=MASKS[1], test_mask=MASKS[2]
    )
    g = from_pyg(data, name="toy")
    assert (g.name, g.num_nodes, g.num_classes) == ("toy", 4, 3)
    assert _edge_set(g) == UNDIRECTED
    assert g.x.dtype == np.float32 and np.array_equal(g.x, X.numpy().astype(np.float32))
    assert g.y.tolist() == [0, 1, 2, 1]
    assert [m.tolist() for m in (g.train_mask, g.val_mask, g.test_mask)] == [m.tolist() for m in MASKS]


def test_from_pyg_without_masks_or_features_draws_a_split():
    pyg_data = pytest.importorskip("torch_geometric.data")
    data = pyg_data.Data(edge_index=EDGE_INDEX, y=Y.view(-1, 1), num_nodes=4)
    g = from_pyg(data, symmetrize=False)
    assert _edge_set(g) == {(0, 1), (1, 0), (1, 2), (3, 0)}
    assert g.x.tolist() == [[1.0]] * 4 and g.y.tolist() == [0, 1, 2, 1]
    assert int(g.train_mask.sum() + g.val_mask.sum() + g.test_mask.sum()) == 4


def test_from_pyg_rejects_other_objects():
    pytest.importorskip("torch_geometric")
    with pytest.raises(DistGNNError) as err:
        from_pyg({"edge_index": EDGE_INDEX})
    assert str(err.value) == "from_pyg expects a torch_geometric.data.Data, got dict"


def test_from_pyg_without_torch_geometric(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_geometric", None)  # makes `import torch_geometric` fail
    with pytest.raises(DistGNNError) as err:
        from_pyg(object())
    assert str(err.value) == "from_pyg requires torch_geometric; pip install 'distgnn[pyg]'"


def test_from_dgl_without_dgl(monkeypatch):
    monkeypatch.setitem(sys.modules, "dgl", None)
    with pytest.raises(DistGNNError) as err:
        from_dgl(object())
    assert str(err.value) == "from_dgl requires dgl; pip install 'distgnn[dgl]'"


class _FakeDGLGraph:
    """The DGLGraph surface from_dgl reads: edges(), num_nodes(), ndata, is_homogeneous (DGL 2.x API)."""

    def __init__(self, ndata: dict, homogeneous: bool = True) -> None:
        self.ndata = ndata
        self.is_homogeneous = homogeneous

    def edges(self):
        return EDGE_INDEX[0], EDGE_INDEX[1]

    def num_nodes(self) -> int:
        return 4


def test_from_dgl_converts_the_dgl_api(monkeypatch):
    # DGL's wheels need torch <= 2.2, so CI cannot import it; check the conversion against its API shape.
    monkeypatch.setitem(sys.modules, "dgl", types.SimpleNamespace(DGLGraph=_FakeDGLGraph))
    ndata = {"feat": X, "label": Y, "train_mask": MASKS[0], "val_mask": MASKS[1], "test_mask": MASKS[2]}
    g = from_dgl(_FakeDGLGraph(ndata))
    assert (g.name, g.num_nodes, g.num_classes) == ("dgl", 4, 3)
    assert _edge_set(g) == UNDIRECTED and g.y.tolist() == [0, 1, 2, 1]
    assert g.train_mask.tolist() == MASKS[0].tolist()
    with pytest.raises(DistGNNError) as err:
        from_dgl(_FakeDGLGraph(ndata, homogeneous=False))
    assert str(err.value) == "from_dgl supports homogeneous graphs only (one node type and one edge type)"
    with pytest.raises(DistGNNError) as err:
        from_dgl(_FakeDGLGraph({"feat": X[:3]}))
    assert str(err.value) == "DGL features has 3 rows but the graph has 4 nodes"
