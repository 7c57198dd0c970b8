"""Offline graph partitioning (METIS, KaMinPar, random, contiguous) into memory-mappable partition dirs."""

from .format import FORMAT_VERSION, load_meta, load_part, write_partition
from .methods import METHODS, OBJECTIVES, assign_parts
from .part import Part
from .partition import partition_graph
from .quality import assignment_stats, edge_cut, quality_report
from .reassemble import reassemble

__all__ = [
    "FORMAT_VERSION",
    "METHODS",
    "OBJECTIVES",
    "Part",
    "assign_parts",
    "assignment_stats",
    "edge_cut",
    "load_meta",
    "load_part",
    "partition_graph",
    "quality_report",
    "reassemble",
    "write_partition",
]
