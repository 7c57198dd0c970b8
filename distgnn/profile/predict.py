"""``distgnn profile predict``: the per-epoch volume (and, given a network, time) from a partition alone."""

from __future__ import annotations

import os

from distgnn import jsonio
from distgnn.config import ParallelConfig
from distgnn.errors import DistGNNError
from distgnn.profile.exchanges import ModelSpec, layer_exchanges
from distgnn.profile.network import Network
from distgnn.profile.partition_info import PartitionInfo
from distgnn.profile.recorder import PROFILE_FORMAT, PROFILE_VERSION
from distgnn.profile.strategies import predictor
from distgnn.profile.volume import Volume


def predict_volume(
    info: PartitionInfo | str | os.PathLike, spec: ModelSpec, parallel: ParallelConfig
) -> Volume:
    """The volume ``parallel.strategy`` moves per epoch on this partition for this model."""
    predict = predictor(parallel.strategy)  # fails first on a strategy the profiler does not know
    if not isinstance(info, PartitionInfo):
        info = PartitionInfo.from_dir(info)
    return predict(info, layer_exchanges(spec, info.feat_dim, info.num_classes), parallel, spec)


def load_profile(path: str | os.PathLike) -> dict:
    """A ``--profile-out`` file, checked for its format and version."""
    return jsonio.read_document(path, PROFILE_FORMAT, PROFILE_VERSION)


def run_times(profile: dict) -> dict:
    """Mean per-epoch seconds of a measured run (first epoch left out when there are more)."""
    hist = profile["history"]
    timed = hist[1:] if len(hist) > 1 else hist
    if not timed:
        raise DistGNNError("the profile has no epochs")
    mean = {
        k: sum(r.get(k) or 0.0 for r in timed) / len(timed) for k in ("epoch_s", "comm_s", "exposed_comm_s")
    }
    mean["non_comm_s"] = max(mean["epoch_s"] - mean["exposed_comm_s"], 0.0)
    mean["hidden_fraction"] = 1.0 - mean["exposed_comm_s"] / mean["comm_s"] if mean["comm_s"] > 0 else 0.0
    return mean


def what_if(volume: Volume, network: Network, run: dict | None = None) -> dict:
    """Predicted communication seconds per epoch on ``network``; with a measured run, epoch seconds too.

    ``epoch_s_no_overlap`` adds all predicted communication to the run's non-communication time;
    ``epoch_s`` hides the fraction of it that the run hid behind computation.
    """
    comm = network.epoch_time(volume)
    out: dict = {"network": network.to_dict(), "comm_s": comm}
    if run is not None:
        out["epoch_s_no_overlap"] = run["non_comm_s"] + comm
        out["epoch_s"] = run["non_comm_s"] + comm * (1.0 - run["hidden_fraction"])
        out["from_run"] = run
    return out
