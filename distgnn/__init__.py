"""distgnn: distributed full-graph GNN training for PyTorch."""

__version__ = "0.1.0"
