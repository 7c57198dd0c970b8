"""Parallel strategies (one file each) and the process layout they share."""

from distgnn.comm.layout import ProcessLayout
from distgnn.parallel.graph import GraphParallel

__all__ = ["GraphParallel", "ProcessLayout"]
