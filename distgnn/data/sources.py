"""Resolve a graph source spec (what the CLI's ``--graph`` takes) to a loaded Graph.

Specs: a ``.npz`` file (our schema), a graph directory (the schema as ``.npy`` files beside a ``graph.json``
marker), any other directory as an OGB dataset, any other file as a text edge list, or ``synthetic`` /
``synthetic:key=value,...`` for the seeded generator (keys in ``SYNTHETIC_KEYS``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distgnn.data.assemble import CsrBuild, in_memory_csr
from distgnn.data.edgelist import load_edgelist
from distgnn.data.graph import Graph
from distgnn.data.graph_dir import is_graph_dir, load_graph_dir
from distgnn.data.npz import load_npz
from distgnn.data.ogb import load_ogb
from distgnn.data.synthetic import synthetic_graph
from distgnn.errors import DistGNNError


def _int(text: str) -> int:
    """``200000``, ``200_000`` or ``2e5``."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise ValueError(text) from None
        return int(value)


def _count(text: str) -> int | float:
    """A node count (``500``) or a fraction of the nodes (``0.1``)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _bool(text: str) -> bool:
    table = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    return table[text.lower()]


# spec key -> (synthetic_graph keyword, parser, what the value must be)
SYNTHETIC_KEYS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "nodes": ("num_nodes", _int, "an integer"),
    "edges": ("num_edges", _int, "an integer"),
    "features": ("num_features", _int, "an integer"),
    "classes": ("num_classes", _int, "an integer"),
    "communities": ("communities", _int, "an integer"),
    "homophily": ("homophily", float, "a number"),
    "noise": ("feature_noise", float, "a number"),
    "gamma": ("degree_exponent", float, "a number > 2"),
    "shuffle": ("shuffle", _bool, "true or false"),
    "train": ("num_train_per_class", _int, "an integer"),
    "val": ("num_val", _count, "a count or a fraction"),
    "test": ("num_test", _count, "a count or a fraction"),
    "seed": ("seed", _int, "an integer"),
    "stream": ("stream", _bool, "true or false"),
}


def parse_synthetic(spec: str) -> dict[str, Any]:
    """``synthetic:nodes=1e5,edges=2e6`` -> synthetic_graph keyword arguments."""
    valid = "valid keys: " + ", ".join(SYNTHETIC_KEYS)
    _, _, body = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, eq, text = (s.strip() for s in item.partition("="))
        if not eq:
            raise DistGNNError(f"synthetic: expected key=value, got '{item}'; {valid}")
        if key not in SYNTHETIC_KEYS:
            raise DistGNNError(f"synthetic: unknown key '{key}'; {valid}")
        name, parse, expected = SYNTHETIC_KEYS[key]
        try:
            kwargs[name] = parse(text)
        except (ValueError, KeyError, OverflowError):
            raise DistGNNError(
                f"synthetic: bad value '{text}' for {key} (expected {expected}); {valid}"
            ) from None
    return kwargs


def _streamed_synthetic(kwargs: dict[str, Any], progress: bool, csr: CsrBuild) -> Graph:
    """``synthetic:...,stream=true``: the model written a chunk at a time (``write_synthetic_dir``) to a
    graph directory beside the out-of-core CSR (or in a temporary directory), then loaded from it."""
    from distgnn.data.csr_on_disk import CsrOnDisk
    from distgnn.data.synthetic_dir import write_synthetic_dir

    if "shuffle" in kwargs:
        raise DistGNNError(
            "synthetic: stream=true keeps communities as contiguous IDs; shuffle is not supported"
        )
    with tempfile.TemporaryDirectory(
        prefix="synthetic-", dir=csr.path.parent if isinstance(csr, CsrOnDisk) else None
    ) as tmp:
        write_synthetic_dir(Path(tmp) / "synthetic", **kwargs, progress=progress)
        return load_graph_dir(
            Path(tmp) / "synthetic", progress=progress, csr=csr
        )  # mapped: survives the rmdir


def load_graph(spec: str, *, progress: bool = True, csr: CsrBuild = in_memory_csr) -> Graph:
    """Load the graph a spec names (see the module docstring); every failure is one DistGNNError line.

    ``csr`` builds the normalised CSR of every file source (``CsrOnDisk``: on disk, under a memory
    budget); the synthetic generator builds its own in memory, unless ``stream=true`` asks for the same
    model written a chunk at a time (``distgnn.data.synthetic_dir``: a different graph for the same seed)."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        kwargs = parse_synthetic(spec)
        if kwargs.pop("stream", False):
            return _streamed_synthetic(kwargs, progress, csr)
        return synthetic_graph(**kwargs, progress=progress)
    path = Path(spec)
    if not path.exists():
        raise DistGNNError(f"no such file or directory: {spec}")
    if is_graph_dir(path):
        return load_graph_dir(path, progress=progress, csr=csr)
    if path.is_dir():
        return load_ogb(path, progress=progress, csr=csr)
    if path.suffix == ".npz":
        return load_npz(path, progress=progress, csr=csr)
    return load_edgelist(path, progress=progress, csr=csr)
