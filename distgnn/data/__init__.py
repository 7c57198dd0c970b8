"""Graph data: the Graph type, loaders for every source, normalisation rules and a synthetic generator."""

from distgnn.data.edgelist import load_edgelist
from distgnn.data.graph import Graph
from distgnn.data.graph_dir import load_graph_dir, save_graph_dir
from distgnn.data.interop import from_dgl, from_pyg
from distgnn.data.normalize import add_self_loops, build_csr, normalize_edges
from distgnn.data.npz import load_npz, save_npz
from distgnn.data.ogb import load_ogb
from distgnn.data.sources import load_graph
from distgnn.data.synthetic import synthetic_graph

__all__ = [
    "Graph",
    "add_self_loops",
    "build_csr",
    "from_dgl",
    "from_pyg",
    "load_edgelist",
    "load_graph",
    "load_graph_dir",
    "load_npz",
    "load_ogb",
    "normalize_edges",
    "save_graph_dir",
    "save_npz",
    "synthetic_graph",
]
