"""GNN models. They depend only on torch and the `Propagation` seam, never on comm or parallel code.

Your own model: a :class:`LayeredModel` (most easily a :class:`LayerStack` of :class:`StackConv` layers)
built by a factory ``(ModelConfig, in_dim, out_dim) -> LayeredModel``, given as ``--model
module:function`` or registered with :func:`register_model` (``docs/models.md``).
"""

from distgnn.models.deepgcn import DeepGCN
from distgnn.models.exported import load_exported
from distgnn.models.gat import GAT
from distgnn.models.gcn import GCN
from distgnn.models.layered import LayeredModel
from distgnn.models.propagation import Propagation
from distgnn.models.registry import MODELS, ModelFactory, build_model, register_model
from distgnn.models.sage import GraphSAGE
from distgnn.models.stack import LayerStack, StackConv

__all__ = [
    "GAT", "GCN", "MODELS", "DeepGCN", "GraphSAGE", "LayerStack", "LayeredModel", "ModelFactory",
    "Propagation", "StackConv", "build_model", "load_exported", "register_model",
]  # fmt: skip
