"""Parallel strategies (one file each) and the process layout they share."""

from distgnn.parallel.graph import GraphParallel
from distgnn.parallel.layout import ProcessLayout

__all__ = ["GraphParallel", "ProcessLayout"]
