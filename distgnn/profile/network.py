"""What-if on a network: an alpha-beta model per peer link turns bytes into communication time.

A message of ``b`` bytes over one link costs ``alpha + b / beta`` (latency, bandwidth). One exchange (an
all-to-all of one layer and direction) finishes when its busiest rank has sent and received all its
messages, each peer link used one after the other:
``T = max_p max(sum_{q: b_pq > 0} alpha + b_pq / beta, sum_{q: b_qp > 0} alpha + b_qp / beta)``.
An epoch's communication time is the sum over its exchanges (they are collectives, one after another).
A network measured on a machine is read from a file (``--network FILE.json``, ``network_file``).

A calibrated network (``distgnn.profile.calibration``) may carry ``segments``: an alpha-beta pair per
message-size range, so a message costs the line of the range its size falls in. One straight line through
1 KiB..16 MiB misjudges both ends (on loopback it under-rates the bandwidth of the MiB-sized messages a
training exchange sends); the ranges keep the model an alpha-beta per link and per message size.

Presets (per direction, one link per device; latencies are typical small-message figures, not specs):

- ``nvlink``: 300 GB/s, 2 us -- NVIDIA A100 datasheet, third-generation NVLink 600 GB/s bidirectional;
- ``pcie4``: 32 GB/s, 2 us -- PCI-SIG PCIe 4.0 x16, 16 GT/s x 16 lanes (~31.5 GB/s after 128b/130b);
- ``ib-hdr``: 25 GB/s, 1 us -- InfiniBand HDR 200 Gb/s (NVIDIA ConnectX-6 / Quantum product briefs);
- ``eth-25g``: 3.125 GB/s, 10 us -- 25 Gb/s Ethernet (IEEE 802.3by), TCP latency of a few to tens of us.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from distgnn.errors import DistGNNError
from distgnn.profile.volume import Volume

_BW_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}  # divisors


@dataclass(frozen=True)
class Network:
    """``bandwidth`` bytes/s per direction of one link, ``latency`` seconds per message.

    ``segments`` (optional, ascending ``(upper_bytes, latency, bandwidth)``) replace the single pair for
    messages of at most ``upper_bytes``; the last segment also serves larger messages.
    ``bandwidth``/``latency`` then describe the segment of the largest messages. A segment of an
    interpolated calibration is a line between two measured sizes: its latency may be negative.
    """

    bandwidth: float
    latency: float
    name: str = "custom"
    segments: tuple[tuple[float, float, float], ...] = ()

    def message_time(self, nbytes: np.ndarray) -> np.ndarray:
        """Seconds per message of ``nbytes`` (0 for no message)."""
        nbytes = np.asarray(nbytes, dtype=np.float64)
        if self.segments:
            upper = np.array([s[0] for s in self.segments[:-1]])
            seg = np.searchsorted(upper, nbytes, side="left")  # first segment whose upper bound >= size
            alpha = np.array([s[1] for s in self.segments])[seg]
            beta = np.array([s[2] for s in self.segments])[seg]
        else:
            alpha, beta = self.latency, self.bandwidth
        return np.where(nbytes > 0, alpha + nbytes / beta, 0.0)

    def exchange_time(self, peer_bytes: np.ndarray) -> float:
        """One all-to-all whose rank p sends ``peer_bytes[p, q]`` to rank q."""
        t = self.message_time(np.asarray(peer_bytes, dtype=np.float64))
        np.fill_diagonal(t, 0.0)
        return float(max(t.sum(axis=1).max(initial=0.0), t.sum(axis=0).max(initial=0.0)))

    def epoch_time(self, volume: Volume) -> float:
        """Predicted training-epoch communication seconds: every flow is one exchange."""
        return sum(self.exchange_time(f.bytes()) for f in volume.flows)

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "bandwidth_Bps": self.bandwidth, "latency_s": self.latency}
        if self.segments:
            out["segments"] = [
                {"upper_bytes": u, "latency_s": a, "bandwidth_Bps": b} for u, a, b in self.segments
            ]
        return out


PRESETS = {
    "nvlink": Network(300e9, 2e-6, "nvlink"),
    "pcie4": Network(32e9, 2e-6, "pcie4"),
    "ib-hdr": Network(25e9, 1e-6, "ib-hdr"),
    "eth-25g": Network(25e9 / 8, 10e-6, "eth-25g"),
}


def parse_inline(spec: str) -> Network:
    """A preset name or ``bandwidth=25GB/s,latency=5us`` (bandwidth also in bits: ``25Gb/s``); a network
    file is read by :func:`distgnn.profile.network_file.parse_network`, which takes all three."""
    text = spec.strip()
    if text in PRESETS:
        return PRESETS[text]
    fields: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ("bandwidth", "latency") or key.strip() in fields:
            raise _bad(spec)
        fields[key.strip()] = value.strip()
    if set(fields) != {"bandwidth", "latency"}:
        raise _bad(spec)
    return Network(_bandwidth(fields["bandwidth"], spec), _latency(fields["latency"], spec), "custom")


def _bandwidth(value: str, spec: str) -> float:
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([KMGT]?i?)([Bb])/s", value)
    if not m or float(m.group(1)) <= 0:
        raise _bad(spec)
    scale = _BW_UNITS[(m.group(2) + "b").lower()]
    bits = m.group(3) == "b"
    return float(m.group(1)) * scale / (8 if bits else 1)


def _latency(value: str, spec: str) -> float:
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(s|ms|us|ns)", value)
    if not m:
        raise _bad(spec)
    return float(m.group(1)) / _TIME_UNITS[m.group(2)]


def _bad(spec: str) -> DistGNNError:
    return DistGNNError(
        f"cannot parse network {spec!r}: use a preset ({', '.join(PRESETS)}), "
        "'bandwidth=<number><unit>/s,latency=<number><s|ms|us|ns>' (e.g. 'bandwidth=25GB/s,latency=5us') "
        "or a calibrated network file (FILE.json)"
    )
