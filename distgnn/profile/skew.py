"""Communication time without the ranks' skew: each collective timed from its last rank's launch.

A rank's ``in_flight_s`` runs from its own launch of an exchange to the completion it observed. When the
ranks reach a collective at different times (one rank's computation took longer, or on shared cores one
process simply ran later), the early ranks' in-flight time includes waiting for the late one: time the
alpha-beta model of ``distgnn.profile.network`` does not predict and a faster network would not remove.
From every rank's per-call spans (``exchanges[j].spans``, Unix seconds, host clock) one call's transfer
time is ``max_r done_r - max_r launch_r``: from the moment the last rank launched it until the last rank
saw it complete. Spans from several machines are only as comparable as those machines' clocks.
"""

from __future__ import annotations

from collections.abc import Sequence

from distgnn.errors import DistGNNError

TRAINING_DIRECTIONS = ("fwd", "bwd")


def last_launch_seconds(call: Sequence[Sequence[float]]) -> float:
    """One collective's ``(launch, done)`` per rank -> seconds from its last launch to its last completion."""
    return max(max(done for _, done in call) - max(start for start, _ in call), 0.0)


def call_transfer_seconds(
    profile: dict, directions: tuple[str, ...] = TRAINING_DIRECTIONS
) -> dict[int, dict[tuple, float]]:
    """Epoch -> {(layer, direction, call index): seconds from the call's last launch to its last completion}.

    Only exchanges that every rank made the same number of times count (graph parallelism's
    collectives); an epoch some rank did not record is left out.
    """
    ranks = profile["ranks"]
    by_rank = [{e["epoch"]: e for e in r["epochs"] if "epoch" in e} for r in ranks]
    epochs = sorted(set.intersection(*(set(b) for b in by_rank))) if by_rank else []
    out: dict[int, dict[tuple, float]] = {}
    for epoch in epochs:
        calls: dict[tuple, list[list[list[float]]]] = {}
        for b in by_rank:
            for x in b[epoch]["exchanges"]:
                if x["direction"] in directions:
                    if x.get("spans") is None:
                        raise DistGNNError(
                            "the profile has no per-call spans (recorded on CUDA, or by an older distgnn)"
                        )
                    calls.setdefault((x["layer"], x["direction"]), []).append(x["spans"])
        out[epoch] = {
            (*slot, i): last_launch_seconds(call)
            for slot, spans in calls.items()
            if len(spans) == len(ranks) and len({len(s) for s in spans}) == 1  # a collective of every rank
            for i, call in enumerate(zip(*spans, strict=True))
        }
    return out


def transfer_seconds(profile: dict, directions: tuple[str, ...] = TRAINING_DIRECTIONS) -> dict[int, float]:
    """Epoch -> the epoch's communication seconds, each call timed from its last rank's launch."""
    return {e: sum(calls.values()) for e, calls in call_transfer_seconds(profile, directions).items()}
