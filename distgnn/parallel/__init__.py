"""Parallel strategies (one file each: ``graph.py``, ``pipeline.py``, ``hybrid.py``), the propagation
engines they run models with (``halo_prop.py``, ``chunk_prop.py``) and the process layout they share."""

from distgnn.comm.layout import ProcessLayout
from distgnn.parallel.chunk_prop import ChunkPropagation
from distgnn.parallel.graph import GraphStrategy
from distgnn.parallel.halo_prop import HaloPropagation
from distgnn.parallel.hybrid import HybridStrategy
from distgnn.parallel.pipeline import PipelineStrategy

__all__ = [
    "ChunkPropagation",
    "GraphStrategy",
    "HaloPropagation",
    "HybridStrategy",
    "PipelineStrategy",
    "ProcessLayout",
]
