"""The communication profiler: measured profiles, predictions from a partition, sweeps and reports."""
