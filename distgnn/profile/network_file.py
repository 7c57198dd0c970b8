"""A calibrated network as a file: what the calibration writes and ``--network FILE.json`` reads.

Strict JSON, one object::

    {"format": "distgnn-network", "version": 1, "name": "loopback-4-busy",
     "bandwidth_Bps": 2.1e8, "latency_s": -0.004,
     "segments": [{"upper_bytes": 1024, "latency_s": 0.0037, "bandwidth_Bps": 1e15}, ...],
     "calibration": {...}}

``bandwidth_Bps``/``latency_s`` are one link's bandwidth (bytes/s per direction) and per-message latency;
``segments`` (optional, ascending ``upper_bytes``) replace them for messages of at most ``upper_bytes``,
the last segment serving larger ones too (:class:`distgnn.profile.network.Network`). A segment of an
interpolated fit is a line between two measured sizes, so its latency may be negative; its time must not
be, anywhere in its size range. ``calibration`` is free-form (how and where it was measured) and ignored
when read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from distgnn import jsonio
from distgnn.errors import DistGNNError
from distgnn.profile.network import PRESETS, Network, parse_inline

NETWORK_FORMAT = "distgnn-network"
NETWORK_VERSION = 1


def network_document(network: Network, calibration: dict | None = None) -> dict:
    """The file's content for ``network`` (``calibration``: how it was measured, kept verbatim)."""
    doc = {"format": NETWORK_FORMAT, "version": NETWORK_VERSION, **network.to_dict()}
    if calibration is not None:
        doc["calibration"] = calibration
    return doc


def save_network(path: str | os.PathLike, network: Network, calibration: dict | None = None) -> None:
    """Write ``network`` to ``path`` (atomically, strict JSON)."""
    jsonio.write_atomic(path, network_document(network, calibration), indent=1)


def load_network(path: str | os.PathLike) -> Network:
    """The network of a ``distgnn-network`` file; one-line errors for anything else."""
    doc = jsonio.read_document(path, NETWORK_FORMAT, NETWORK_VERSION)
    where = Path(path)
    bandwidth = _number(doc, "bandwidth_Bps", where)
    latency = _number(doc, "latency_s", where)
    raw = doc.get("segments", [])
    if not isinstance(raw, list):
        raise DistGNNError(f"{where}: 'segments' must be a list")
    segments = tuple(
        (_number(s, "upper_bytes", where), _number(s, "latency_s", where), _number(s, "bandwidth_Bps", where))
        for s in raw
    )
    lines = segments or ((math.inf, latency, bandwidth),)
    bounds = [0.0, *(upper for upper, _, _ in lines)]
    if (
        bandwidth <= 0
        or any(b <= 0 for _, _, b in lines)
        or any(hi <= lo for lo, hi in zip(bounds, bounds[1:], strict=False))
    ):
        raise DistGNNError(f"{where}: segments need ascending upper_bytes > 0 and positive bandwidth_Bps")
    for lower, (upper, alpha, beta) in zip(bounds, lines, strict=False):
        if alpha + lower / beta < 0 or (math.isfinite(upper) and alpha + upper / beta < 0):
            raise DistGNNError(
                f"{where}: a message of {lower:.0f}..{upper:.0f} bytes would take negative time"
            )
    name = doc.get("name", where.stem)
    return Network(bandwidth, latency, str(name), segments)


def _number(obj: object, key: str, where: Path) -> float:
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DistGNNError(f"{where}: {key!r} must be a finite number")
    return float(value)


def parse_network(spec: str) -> Network:
    """A preset name, ``bandwidth=25GB/s,latency=5us`` (bandwidth also in bits: ``25Gb/s``), or the path
    of a calibrated network file (e.g. written by ``benchmarks/profile/calibrate_loopback.py
    --network-out``)."""
    text = spec.strip()
    if "=" not in text and text not in PRESETS and (text.endswith(".json") or os.path.isfile(text)):
        return load_network(text)
    return parse_inline(text)
