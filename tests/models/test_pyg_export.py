"""`to_pyg`: every built-in model, exported and converted to PyG modules, reproduces distgnn's output.

The reference is distgnn's own single-process propagation over a one-part partition (self-loops dropped
from the part, one added per node); PyG gets the graph's edge_index with a self-loop on every other node
too, which its GATConv/GCNConv/GCN2Conv replace by exactly one. Biases are non-zero, so a bias mapped to
the wrong place shows; float32 throughout, compared to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distgnn.checkpoint.export import save_exported
from distgnn.comm.layout import ProcessLayout
from distgnn.data import from_pyg
from distgnn.data.synthetic import synthetic_graph
from distgnn.errors import DistGNNError
from distgnn.models import GAT, GraphSAGE, build_model, load_exported
from distgnn.models.exported import FORMAT, VERSION
from distgnn.models.gat import GATConv
from distgnn.models.layered import LayeredModel
from distgnn.models.stack import LayerStack
from distgnn.parallel.halo_prop import HaloPropagation
from distgnn.partitioning import load_part, partition_graph

pyg = pytest.importorskip("torch_geometric", reason="to_pyg needs PyTorch Geometric (the pyg extra)")
from torch_geometric.data import Data  # noqa: E402
from torch_geometric.utils import remove_self_loops  # noqa: E402

from distgnn.models.pyg import to_pyg  # noqa: E402

IN_DIM, CLASSES = 6, 3
EXPORTED = {  # exported through a file, as `distgnn export` writes it
    "gcn": dict(hidden=8, layers=3, heads=1),
    "sage": dict(hidden=8, layers=3, heads=1),
    "gat": dict(hidden=4, layers=2, heads=3),  # 3 heads concatenated, then 1 output head
    "deepgcn": dict(hidden=8, layers=4, heads=1, alpha=0.2, lam=1.5),
}


def prepared(graph, part_dir) -> tuple:
    """x, distgnn's single-process propagation over a one-part partition, its rows' node ids, and the
    edge_index PyG gets: the graph's edges plus a self-loop on every other node."""
    partition_graph(graph, 1, part_dir, reorder="rcm", progress=False)  # rcm: rows not in node order
    prop = HaloPropagation.from_partition_dir(part_dir, ProcessLayout.single("cpu"), kernel_impl="reference")
    rows = torch.tensor(np.asarray(load_part(part_dir, 0).orig_ids), dtype=torch.int64)
    src, dst = (torch.as_tensor(np.asarray(e), dtype=torch.int64) for e in graph.edges())
    loops = torch.arange(0, graph.num_nodes, 2)
    edge_index = torch.stack([torch.cat([src, loops]), torch.cat([dst, loops])])  # messages src -> dst
    return torch.as_tensor(graph.x), prop, rows, edge_index


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    graph = synthetic_graph(
        num_nodes=60, num_edges=360, num_features=IN_DIM, num_classes=CLASSES, num_train_per_class=5, seed=4
    )
    return prepared(graph, tmp_path_factory.mktemp("pyg") / "p1")


def randomise(model: LayeredModel, seed: int) -> LayeredModel:
    """Every parameter redrawn (biases included, which start at zero), small enough to stay tame."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


def outputs(model: LayeredModel, setup) -> tuple[torch.Tensor, torch.Tensor]:
    """(PyG's output, distgnn's output), both in node order."""
    x, prop, rows, edge_index = setup
    with torch.no_grad():
        want = torch.empty(x.shape[0], model.output_width())
        want[rows] = model(x[rows], prop)  # distgnn's rows are the part's order, back to node ids
        module = to_pyg(model)
        assert not module.training
        assert all(type(c).__module__.startswith(pyg.__name__) for c in module.convs)
        got = module(x, edge_index)
        if isinstance(model, GraphSAGE):  # SAGEConv averages over the edges as given, loops included
            assert not torch.allclose(got, want, rtol=1e-5, atol=1e-5)
            got = module(x, remove_self_loops(edge_index)[0])
    return got, want


def check(model: LayeredModel, setup) -> None:
    torch.testing.assert_close(*outputs(model, setup), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(EXPORTED))
def test_exported_model_runs_as_pyg_module(setup, tmp_path, name):
    opts = dict(EXPORTED[name], dropout=0.5)
    hidden = opts.pop("hidden")
    model = randomise(build_model(name, IN_DIM, hidden, CLASSES, **opts), seed=1)
    config = dict(name=name, in_dim=IN_DIM, hidden=hidden, out_dim=CLASSES, **opts)
    data = dict(format=FORMAT, version=VERSION, config=config, model=model.state_dict(), epoch=1)
    save_exported(tmp_path / "m.pt", data)
    check(load_exported(tmp_path / "m.pt"), setup)


@pytest.mark.parametrize("heads,out_heads,layers", [(2, 3, 2), (1, 2, 3)])
def test_gat_with_averaged_output_heads(setup, heads, out_heads, layers):
    gat = GAT(IN_DIM, 5, CLASSES, layers=layers, dropout=0.6, heads=heads, out_heads=out_heads)
    check(randomise(gat, seed=2), setup)


def test_on_a_directed_graph_only_the_gcn_normalisation_differs(tmp_path):
    """PyG's gcn_norm scales a source by its in-degree, distgnn by its out-degree: GCN and deepgcn agree
    on undirected graphs only; GAT and GraphSAGE use no degree of the source and agree on both."""
    g = torch.Generator().manual_seed(5)
    n = 40
    data = Data(x=torch.randn(n, IN_DIM, generator=g), y=torch.randint(0, CLASSES, (n,), generator=g))
    data.edge_index = torch.randint(0, n, (2, 160), generator=g)
    setup = prepared(from_pyg(data, symmetrize=False), tmp_path / "p1")
    for name, same in [("gat", True), ("sage", True), ("gcn", False), ("deepgcn", False)]:
        model = randomise(build_model(name, IN_DIM, 4, CLASSES, layers=2, heads=2), seed=3)
        got, want = outputs(model, setup)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5) == same, name


def test_other_models_are_refused_in_one_line():
    custom = LayerStack([GATConv(IN_DIM, CLASSES, 2, concat=False)], 0.0, "relu")  # not the built-in GAT
    with pytest.raises(DistGNNError, match="^no PyG equivalent of LayerStack with the same math: "):
        to_pyg(custom)
