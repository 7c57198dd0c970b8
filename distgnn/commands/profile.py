"""`distgnn profile`: predict a strategy's communication from a partition, sweep P, report a run or sweep.

- ``predict``: exact per-epoch bytes (total, per rank, per peer pair, per layer, forward/backward) and
  per-rank memory from a partition directory alone; ``--network`` adds an alpha-beta time, and
  ``--from-run`` a predicted epoch time using a measured run's compute time;
- ``sweep``: partition a graph at several part counts (cached) and tabulate the prediction at each;
- ``report``: tables and PNGs of a measured profile (``distgnn train --profile-out``) or of a sweep.
"""

from __future__ import annotations

import argparse
import sys

from distgnn.commands.options import add_config_arguments, section_from_args, section_values
from distgnn.config import STRATEGIES, ParallelConfig

EPILOG = """\
examples:
  distgnn profile predict --partitions runs/cora-4 --model gcn --layers 2 --hidden 16
  distgnn profile predict --partitions runs/cora-4 --model deepgcn --layers 16 --hidden 64 \\
      --comm-dtype bf16 --network ib-hdr --json
  distgnn train --partitions runs/cora-4 --nproc 4 --profile-out runs/cora.profile.json
  distgnn profile predict --partitions runs/cora-4 --network eth-25g --from-run runs/cora.profile.json
  distgnn profile sweep --dataset synthetic:nodes=100000,edges=2000000 --parts 2,4,8,16 --out runs/sweep \\
      --strategy graph,pipeline,hybrid --stages 2 --model deepgcn --layers 16 --hidden 64 --network ib-hdr
  distgnn profile report runs/cora.profile.json --out runs/cora-report
  distgnn profile report runs/sweep --out runs/sweep-report

Networks: a preset (nvlink, pcie4, ib-hdr, eth-25g), "bandwidth=25GB/s,latency=5us", or a calibrated
network file (JSON, format distgnn-network), e.g. measured on this machine's loopback with
  python benchmarks/profile/calibrate_loopback.py --worlds 4 --network-out runs/net
  distgnn profile predict --partitions runs/syn-4 --model gcn --layers 3 --hidden 128 \
      --network runs/net/loopback-4.json
(a calibration holds for the world size it was measured at).
"""


SWEEP_STRATEGIES = """\
strategies on P devices (one row per P and strategy; --strategy takes a comma list):
  graph     P parts, one rank each (graph-parallel)
  pipeline  the whole graph (1 part) through P stages; rows with P > the model's layers are listed as
            not applicable (each stage needs a layer)
  hybrid    --stages S stages x P/S parts; every P must be a multiple of S, and 2 <= S <= layers
partitions are cached in --cache and shared: graph at P, hybrid at S*P and pipeline (1 part) read the
same directories; a later sweep (another model or network) partitions nothing.
"""


# `distgnn train`'s options that change what is exchanged, generated from its config (distgnn/config.py):
# the model, and the parallel fields the predictors read (chunks: accepted and checked as by train).
MODEL_FIELDS = ("name", "layers", "hidden", "heads")
PREDICT_FIELDS = ("strategy", "stages", "chunks", "stage_layers", "comm_dtype", "halo_staleness", "precision")
# A sweep's rows choose their own strategy and stages (its --strategy list, hybrid's --stages S).
SWEEP_FIELDS = ("chunks", "comm_dtype", "halo_staleness", "precision")


def _network_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--network",
        metavar="SPEC",
        help='preset, "bandwidth=25GB/s,latency=5us" or a calibrated network FILE.json',
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "profile",
        help="predict, sweep and report communication volume (no training needed to predict)",
        description="Communication profiler: bytes per strategy at any scale, what-if time, plots.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="profile_command", metavar="SUBCOMMAND", required=True)

    pr = sub.add_parser("predict", help="per-epoch bytes and per-rank memory from a partition directory")
    pr.add_argument("--partitions", required=True, metavar="DIR", help="partition directory")
    _network_arg(pr)
    pr.add_argument("--from-run", metavar="PROFILE", help="a --profile-out file: predict the epoch time")
    pr.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    # --strategy: an unknown one is the predictor registry's one-line error, not argparse's usage error.
    only = {"model": MODEL_FIELDS, "parallel": PREDICT_FIELDS}
    add_config_arguments(pr, ("model", "parallel"), only=only, unchecked=("parallel.strategy",))
    pr.set_defaults(func=run_predict)

    sw = sub.add_parser(
        "sweep",
        help="partition at several part counts and tabulate the prediction per strategy",
        epilog=SWEEP_STRATEGIES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sw.add_argument("--dataset", required=True, metavar="SRC", help="graph source (as distgnn partition)")
    sw.add_argument("--out", required=True, metavar="DIR", help="sweep directory (sweep.json)")
    sw.add_argument("--method", default="metis", help="partitioner (default metis; kaminpar for large P)")
    sw.add_argument("--cache", metavar="DIR", help="partition cache (default DIR/partitions)")
    _network_arg(sw)
    sw.add_argument("--json", action="store_true", help="print the sweep as one JSON object")
    sw.add_argument("--no-progress", action="store_true", help="no progress bars")
    rows = sw.add_argument_group("rows (one per P and strategy)")
    rows.add_argument("--parts", required=True, metavar="P,P,...", help="device counts, e.g. 2,4,8,16")
    rows.add_argument(
        "--strategy",
        default=ParallelConfig.strategy,
        metavar="S,S,...",
        help=f"strategies, a comma list of {','.join(STRATEGIES)} (default {ParallelConfig.strategy})",
    )
    rows.add_argument(
        "--stages",
        type=int,
        default=ParallelConfig.stages,
        metavar="S",
        help="hybrid's stages: each hybrid row is S x P/S; a pipeline row has P "
        f"(default {ParallelConfig.stages})",
    )
    add_config_arguments(sw, ("model", "parallel"), only={"model": MODEL_FIELDS, "parallel": SWEEP_FIELDS})
    sw.set_defaults(func=run_sweep)

    rp = sub.add_parser("report", help="tables and PNGs of a measured profile or a sweep")
    rp.add_argument("source", metavar="RUN_OR_SWEEP", help="a --profile-out file or a sweep directory")
    rp.add_argument("--out", metavar="DIR", help="where the PNGs go (default: beside the source)")
    rp.set_defaults(func=run_report)


def _model_spec(args: argparse.Namespace):
    from distgnn.profile.exchanges import ModelSpec

    model = section_from_args(args, "model")
    return ModelSpec(model.name, model.layers, model.hidden, model.heads)


def run_predict(args: argparse.Namespace) -> int:
    from distgnn import jsonio
    from distgnn.profile.network_file import parse_network
    from distgnn.profile.predict import load_profile, predict_volume, run_times, what_if
    from distgnn.profile.strategies import parallel_config
    from distgnn.profile.tables import volume_report

    spec = _model_spec(args)
    parallel = parallel_config(section_values(args, "parallel"))  # before anything is read
    network = parse_network(args.network) if args.network else None
    run = run_times(load_profile(args.from_run)) if args.from_run else None
    if run is not None and network is None:
        from distgnn.errors import DistGNNError

        raise DistGNNError("--from-run needs --network (the network to predict the epoch time on)")
    volume = predict_volume(args.partitions, spec, parallel)
    summary = volume.summary()
    if network is not None:
        summary["what_if"] = what_if(volume, network, run)
    print(jsonio.dumps(summary) if args.json else volume_report(summary))
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from distgnn import jsonio
    from distgnn.profile.network_file import parse_network
    from distgnn.profile.sweep import parse_parts, parse_strategies, sweep, sweep_table

    spec = _model_spec(args)
    strategies = parse_strategies(args.strategy)
    network = parse_network(args.network) if args.network else None
    parts = parse_parts(args.parts)
    result = sweep(
        args.dataset,
        parts,
        spec,
        strategies,
        section_values(args, "parallel"),
        stages=args.stages,
        out_dir=args.out,
        cache_dir=args.cache,
        method=args.method,
        network=network,
        progress=not args.no_progress,
    )
    print(jsonio.dumps(result) if args.json else sweep_table(result))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from distgnn.profile.report import report

    text, pngs = report(args.source, args.out)
    print(text)
    for png in pngs:
        print(f"wrote {png}", file=sys.stderr)
    return 0
