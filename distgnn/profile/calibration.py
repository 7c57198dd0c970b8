"""Fit the what-if network model to micro-benchmark times: alpha-beta per message-size range.

A calibration micro-benchmark (``benchmarks/profile/calibrate_loopback.py``) times one all-to-all in
which every rank sends ``size`` bytes to each of its ``peers`` peers, for sizes from KiB to MiB. The model
(:class:`distgnn.profile.network.Network`) charges the busiest rank ``peers * (alpha + size / beta)``.
Hockney's fit (least squares on absolute error) is one straight line over every size; a piecewise fit
gives each size range its own line, so the bandwidth of the MiB-sized messages training sends is not
averaged with the per-call costs of KiB-sized ones. Ranges share their boundary sizes.

``fit_interpolated`` goes furthest: one line between each two neighbouring measured sizes (the
micro-benchmark measures every power of two), so a message costs what the micro-benchmark measured at
the sizes around it. A least-squares line over a range is set by the range's largest size; when the cost
per byte grows with size (4 processes on 2 cores: 16 MiB per peer costs 3x what 8 MiB does) it
over-rates every smaller message of the range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from distgnn.errors import DistGNNError
from distgnn.profile.network import Network

DEFAULT_BOUNDS = (16 * 2**10, 256 * 2**10, 2 * 2**20)  # bytes: 1-16 KiB, 16-256 KiB, 0.25-2 MiB, 2+ MiB
_MAX_BANDWIDTH = 1e15  # bytes/s: a range whose times do not grow with size (flat within noise)


def fit_hockney(sizes: Sequence[float], seconds: Sequence[float], peers: int) -> tuple[float, float]:
    """(alpha seconds, beta bytes/s) minimising the absolute error of ``peers * (alpha + size / beta)``.

    Neither parameter goes negative: a negative latency refits through the origin, a negative slope
    (times flat within noise) keeps the mean time as latency with a bandwidth of ``_MAX_BANDWIDTH``.
    """
    x = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64) / peers
    if x.size < 2 or len(set(x.tolist())) < 2 or x.shape != t.shape:
        raise DistGNNError("a Hockney fit needs times at two or more distinct message sizes")
    (alpha, inv_beta), *_ = np.linalg.lstsq(np.stack([np.ones_like(x), x], axis=1), t, rcond=None)
    if inv_beta <= 1.0 / _MAX_BANDWIDTH:
        alpha, inv_beta = float(t.mean()), 1.0 / _MAX_BANDWIDTH
    elif alpha < 0:
        alpha, inv_beta = 0.0, float(x @ t / (x @ x))
    return float(alpha), float(1.0 / inv_beta)


def fit_interpolated(
    sizes: Sequence[float], seconds: Sequence[float], peers: int, name: str = "calibrated"
) -> Network:
    """A :class:`Network` through every measured point: one segment per pair of neighbouring sizes.

    ``seconds[i]`` is one exchange in which the busiest rank sends ``peers`` messages of ``sizes[i]``
    bytes. A larger message never costs less: times are made non-decreasing in size first (a flat
    stretch gets the ``_MAX_BANDWIDTH`` slope). Messages up to the smallest size cost what it costs;
    larger than the largest, the last segment's line goes on.
    """
    x = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64) / peers
    if x.shape != t.shape or x.size < 2 or np.any(np.diff(x) <= 0) or np.any(~np.isfinite(t)) or t.min() < 0:
        raise DistGNNError("an interpolated fit needs times at two or more ascending message sizes")
    t = np.maximum.accumulate(t)
    segments = [(float(x[0]), float(t[0] - x[0] / _MAX_BANDWIDTH), _MAX_BANDWIDTH)]
    for x0, x1, t0, t1 in zip(x[:-1], x[1:], t[:-1], t[1:], strict=True):
        beta = (x1 - x0) / (t1 - t0) if t1 > t0 else _MAX_BANDWIDTH
        segments.append((float(x1), float(t0 - x0 / beta), float(beta)))
    _, alpha, beta = segments[-1]
    return Network(beta, alpha, name, tuple(segments))


def fit_piecewise(
    sizes: Sequence[float],
    seconds: Sequence[float],
    peers: int,
    bounds: Sequence[float] = DEFAULT_BOUNDS,
    name: str = "calibrated",
) -> Network:
    """A :class:`Network` with one Hockney fit per size range ``[0, b0], [b0, b1], ..., [b_last, max]``.

    Each range is fitted on the measured sizes inside it, boundaries included (at least two needed).
    """
    x = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    edges = [0.0, *sorted(float(b) for b in bounds), np.inf]
    segments = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (x >= lo) & (x <= hi)
        if len(set(x[inside].tolist())) < 2:
            raise DistGNNError(f"size range {lo:.0f}..{hi:.0f} bytes has fewer than two measured sizes")
        alpha, beta = fit_hockney(x[inside], t[inside], peers)
        segments.append((hi if np.isfinite(hi) else float(x.max()), alpha, beta))
    _, alpha, beta = segments[-1]
    return Network(beta, alpha, name, tuple(segments))
