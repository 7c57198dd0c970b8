"""Checkpoints: per-rank files with a manifest (``files``), the collective save and resume of a set
(``sets``)."""
