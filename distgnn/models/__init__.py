"""GNN models. They depend only on torch and the `Propagation` seam, never on comm or parallel code."""

from distgnn.models.deepgcn import DeepGCN
from distgnn.models.gat import GAT
from distgnn.models.gcn import GCN
from distgnn.models.propagation import Propagation
from distgnn.models.registry import MODELS, build_model
from distgnn.models.sage import GraphSAGE

__all__ = ["GAT", "GCN", "MODELS", "DeepGCN", "GraphSAGE", "Propagation", "build_model"]
