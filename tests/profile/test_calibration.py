"""Calibrating the what-if model: Hockney and per-size-range alpha-beta fits, and segmented networks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distgnn.errors import DistGNNError
from distgnn.profile.calibration import fit_hockney, fit_interpolated, fit_piecewise
from distgnn.profile.network import Network

KIB, MIB = 2**10, 2**20
SIZES = [2**k for k in range(10, 25)]  # 1 KiB .. 16 MiB, as the loopback micro-benchmark


def _times(sizes, peers, alpha, beta):
    return [peers * (alpha + s / beta) for s in sizes]


def test_hockney_recovers_alpha_beta_of_a_p_peer_exchange():
    alpha, beta = fit_hockney(SIZES, _times(SIZES, 3, 200e-6, 0.8e9), peers=3)
    assert alpha == pytest.approx(200e-6)
    assert beta == pytest.approx(0.8e9)


def test_hockney_never_goes_negative():
    # Times through the origin but noisy low: a free fit would give a negative latency.
    sizes = [1 * MIB, 2 * MIB, 4 * MIB]
    alpha, beta = fit_hockney(sizes, [0.9e-3, 2.0e-3, 4.1e-3], peers=1)
    assert alpha == 0.0
    assert beta == pytest.approx(sum(s * s for s in sizes) / (0.9e-3 * MIB + 4e-3 * MIB + 16.4e-3 * MIB))
    # Flat within noise (time falls with size): the mean is the latency, the bandwidth unlimited.
    alpha, beta = fit_hockney([1 * KIB, 2 * KIB, 4 * KIB], [300e-6, 290e-6, 280e-6], peers=1)
    assert alpha == pytest.approx(290e-6)
    assert beta == pytest.approx(1e15)
    with pytest.raises(DistGNNError, match="two or more distinct"):
        fit_hockney([KIB, KIB], [1.0, 2.0], peers=1)


def test_piecewise_fit_gives_each_size_range_its_own_line():
    # Small messages: 300 us + 0.2 GB/s; from 256 KiB on: 1 ms + 0.9 GB/s (a line through all misses both).
    lines = [(300e-6, 0.2e9)] * 9 + [(1e-3, 0.9e9)] * 6
    t = [2 * (a + s / b) for s, (a, b) in zip(SIZES, lines, strict=True)]
    t[8] = 2 * (300e-6 + 256 * KIB / 0.2e9)  # the boundary size belongs to both ranges: keep it on the first
    net = fit_piecewise(SIZES, t[:8] + [t[8]] + t[9:], peers=2, bounds=(256 * KIB,))
    (up0, a0, b0), (up1, a1, b1) = net.segments
    assert (up0, up1) == (256 * KIB, 16 * MIB)
    assert (a0, b0) == (pytest.approx(300e-6), pytest.approx(0.2e9))
    # The second range's fit also sees the boundary point (on the first line): close, not exact.
    assert b1 == pytest.approx(0.9e9, rel=0.1)
    assert (net.latency, net.bandwidth) == (a1, b1)
    # Messages go to the range their size falls in; larger than every range: the last one.
    got = net.message_time(np.array([0, 100 * KIB, 256 * KIB, 8 * MIB, 64 * MIB]))
    want = [0.0, a0 + 100 * KIB / b0, a0 + 256 * KIB / b0, a1 + 8 * MIB / b1, a1 + 64 * MIB / b1]
    np.testing.assert_allclose(got, want)
    line = Network(*reversed(fit_hockney(SIZES, t, peers=2)))
    assert line.message_time(4 * KIB) > 1.5 * (300e-6 + 4 * KIB / 0.2e9)  # why ranges exist
    assert net.to_dict()["segments"][0] == {"upper_bytes": 256 * KIB, "latency_s": a0, "bandwidth_Bps": b0}


def test_segmented_exchange_is_the_busiest_rank_per_message_size():
    net = Network(1.0, 0.0, "t", ((10.0, 1.0, 10.0), (1000.0, 2.0, 100.0)))
    peer = np.array([[0, 10, 100], [0, 0, 0], [0, 0, 0]])
    # rank 0 sends 10 B (1 + 1 s) and 100 B (2 + 1 s): 5 s; rank 2 receives 100 B only: 3 s.
    assert net.exchange_time(peer) == pytest.approx(5.0)
    assert "segments" not in Network(1.0, 0.0).to_dict()


def test_piecewise_refuses_a_range_without_two_sizes():
    with pytest.raises(DistGNNError, match="fewer than two measured sizes"):
        fit_piecewise([KIB, 2 * KIB, 4 * MIB], [1.0, 2.0, 3.0], peers=1, bounds=(16 * KIB, 2 * MIB))


def test_last_launch_seconds_of_one_call():
    from distgnn.profile.skew import last_launch_seconds

    assert last_launch_seconds([(1.0, 1.5), (1.2, 1.4)]) == pytest.approx(0.3)
    assert last_launch_seconds([(1.0, 1.1), (1.2, 1.15)]) == 0.0  # clocks a hair apart: never negative


def test_interpolated_fit_goes_through_every_measured_point():
    # 4 ranks on 2 cores: per byte, 16 MiB costs more than 8 MiB. A range fit's line is pulled up by the
    # 16 MiB point; the interpolation reads each size off its neighbours.
    sizes = [1 * MIB, 2 * MIB, 4 * MIB, 8 * MIB, 16 * MIB]
    t = [3 * x for x in (6e-3, 9e-3, 12e-3, 25e-3, 80e-3)]  # 3 peers per call
    net = fit_interpolated(sizes, t, peers=3)
    np.testing.assert_allclose(net.message_time(np.array(sizes)), [6e-3, 9e-3, 12e-3, 25e-3, 80e-3])
    assert net.message_time(3 * MIB) == pytest.approx(10.5e-3)  # halfway between 2 and 4 MiB
    assert net.message_time(MIB // 2) == pytest.approx(6e-3)  # below the smallest size: its cost
    assert net.message_time(32 * MIB) == pytest.approx(80e-3 + 16 * MIB * (55e-3 / (8 * MIB)))
    assert net.exchange_time(np.array([[0, 3 * MIB], [MIB, 0]])) == pytest.approx(10.5e-3)
    ranges = fit_piecewise(sizes, t, peers=3, bounds=(2 * MIB,))
    assert ranges.message_time(3 * MIB) > 1.25 * net.message_time(3 * MIB)  # why interpolate


def test_interpolated_fit_never_lets_a_larger_message_cost_less():
    net = fit_interpolated([KIB, 2 * KIB, 4 * KIB], [5e-4, 3e-4, 6e-4], peers=1)
    got = net.message_time(np.array([KIB, 1.5 * KIB, 2 * KIB, 3 * KIB]))
    np.testing.assert_allclose(got, [5e-4, 5e-4, 5e-4, 5.5e-4])
    for bad in ([KIB], [2 * KIB, KIB]):
        with pytest.raises(DistGNNError, match="two or more ascending"):
            fit_interpolated(bad, [1e-3] * len(bad), peers=1)


def test_a_calibrated_network_file_round_trips_through_parse_network(tmp_path):
    from distgnn.profile.network_file import network_document, parse_network, save_network

    net = fit_interpolated(SIZES, [2e-4 + s / 3e8 + (s / 2e7) ** 2 * 1e-3 for s in SIZES], 1, name="lo-2")
    path = tmp_path / "lo.json"
    save_network(path, net, {"world_size": 2})
    assert parse_network(str(path)) == net
    doc = network_document(net)
    for change, message in [
        ({"format": "distgnn-profile"}, "is not a distgnn-network file"),
        ({"version": 2}, "distgnn-network version 2 is not supported"),
        ({"bandwidth_Bps": "fast"}, "'bandwidth_Bps' must be a finite number"),
        ({"segments": [{"upper_bytes": 10, "latency_s": -1.0, "bandwidth_Bps": 100.0}]}, "negative time"),
        ({"segments": doc["segments"][::-1]}, "ascending upper_bytes"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(doc | change))
        with pytest.raises(DistGNNError, match=message):
            parse_network(str(bad))
    with pytest.raises(DistGNNError, match=r"nope.json does not exist \(expected a distgnn-network file\)"):
        parse_network(str(tmp_path / "nope.json"))
    with pytest.raises(DistGNNError, match="cannot parse network 'ib-hdrr'.*calibrated network file"):
        parse_network("ib-hdrr")
