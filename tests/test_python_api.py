"""The Python API (docs/training.md, "Python API"): ``distgnn.fit`` with per-epoch callbacks, in one
process and under torchrun (``examples/train_script.py``), bad input as one DistGNNError line, and an
``import distgnn`` that loads no torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dist"))  # helpers.run_ranks
sys.path.insert(0, str(Path(__file__).resolve().parent / "launch"))  # launch_helpers
from helpers import run_ranks  # noqa: E402
from launch_helpers import BIN, REPO, launcher_env, tiny_parts  # noqa: E402

import distgnn  # noqa: E402
from distgnn import jsonio  # noqa: E402
from distgnn.errors import DistGNNError  # noqa: E402
from distgnn.train import Trainer  # noqa: E402

FAST = dict(kernel="reference", progress=False)


@pytest.mark.timeout(120)
def test_callbacks_get_every_record_metrics_out_writes_when_it_is_written(tmp_path, monkeypatch, one_thread):
    # Records are reduced at evaluation epochs (3, 6), checkpoints (5) and the end (7): each callback
    # gets every epoch's record then, in order, the very records --metrics-out writes.
    metrics = tmp_path / "m.jsonl"
    cfg = distgnn.TrainConfig.from_flat(
        partitions=str(tiny_parts(tmp_path, 1)), epochs=7, eval_every=3, checkpoint_every=5,
        checkpoint_dir=str(tmp_path / "ckpt"), metrics_out=str(metrics), **FAST,
    )  # fmt: skip
    trained = []  # epochs trained so far, as each callback call sees it
    real_local_epoch = Trainer.local_epoch
    monkeypatch.setattr(
        Trainer, "local_epoch", lambda self, e: trained.append(e) or real_local_epoch(self, e)
    )
    got, calls = [], []
    result = distgnn.fit(cfg, callbacks=[got.append, lambda r: calls.append((r["epoch"], len(trained)))])
    written = [jsonio.loads(line) for line in metrics.read_text().splitlines()]
    assert [json.loads(jsonio.dumps(r)) for r in got] == written  # NaN (not evaluated) -> null, as written
    assert [r["epoch"] for r in got] == list(range(1, 8))
    assert calls == [(1, 3), (2, 3), (3, 3), (4, 5), (5, 5), (6, 6), (7, 7)]
    assert got == result.history and got[0] is not result.history[0]  # a copy each
    assert isinstance(result, distgnn.TrainResult) and result.model is not None


def _fit_rank(rank: int, world_size: int, part_dir: str) -> tuple[str, str]:
    """One rank under torchrun's environment: ``distgnn.fit`` with a callback that raises on rank 1."""

    def callback(record: dict) -> None:
        if rank == 1 and record["epoch"] == 2:
            raise RuntimeError("callback failed")

    cfg = distgnn.TrainConfig.from_flat(partitions=part_dir, epochs=50, timeout=120, **FAST)
    try:
        distgnn.fit(cfg, callbacks=[callback])
    except Exception as err:
        return type(err).__name__, str(err)
    return "", "finished"


@pytest.mark.timeout(120)
def test_a_raising_callback_stops_every_rank(tmp_path):
    # The group's timeout is 120 s; the harness gives up after 60 s: a peer left waiting would fail here.
    parts = str(tiny_parts(tmp_path, 2))
    results = run_ranks(_fit_rank, 2, parts, init=False, timeout=60)
    assert results == [
        ("PeerFailedError", "rank 0 stopped: rank 1 failed"),
        ("RuntimeError", "callback failed"),
    ]


@pytest.mark.timeout(300)
def test_train_script_under_torchrun_equals_distgnn_train_nproc_2(tmp_path, rdzv_endpoint):
    # No --partitions: under torchrun the script partitions its graph once (local rank 0; rank 1 waits).
    env = launcher_env()
    script = [str(REPO / "examples" / "train_script.py"), "--metrics-out", str(tmp_path / "script.jsonl")]
    torchrun = [
        str(BIN / "torchrun"), "--nnodes", "1", "--nproc_per_node", "2", "--rdzv_backend", "c10d",
        "--rdzv_endpoint", rdzv_endpoint, "--rdzv_id", "api", *script,
    ]  # fmt: skip
    run = subprocess.run(torchrun, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    parts = tmp_path / "runs" / "train-script-2p"
    # The example's settings, given to the CLI: same ranks, same parts, same kernel -> the same bits.
    cli = [
        str(BIN / "distgnn"), "train", "--nproc", "2", "--partitions", str(parts), "--model",
        "gcn", "--layers", "2", "--hidden", "64", "--epochs", "50", "--eval-every", "10",
        "--no-progress", "--metrics-out", str(tmp_path / "cli.jsonl"),
    ]  # fmt: skip
    ref = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert ref.returncode == 0, ref.stderr[-3000:]
    script_records, cli_records = (
        [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        for name in ("script.jsonl", "cli.jsonl")
    )
    keys = ("epoch", "loss", "train_acc", "val_acc", "test_acc", "comm_bytes")
    assert [[r[k] for k in keys] for r in script_records] == [[r[k] for k in keys] for r in cli_records]
    assert len(script_records) == 50
    lines = run.stdout.splitlines()  # rank 0 prints, once: each evaluated epoch, then the test accuracy
    assert [line.split()[1] for line in lines[:-1]] == ["10", "20", "30", "40", "50"]
    assert lines[-1] == f"final test acc {cli_records[-1]['test_acc']:.3f}"


@pytest.mark.timeout(120)
def test_train_script_as_one_process(tmp_path):
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "train_script.py"), "--epochs", "20"],
        cwd=tmp_path, env=launcher_env(), capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == ["10", "20"]
    assert re.fullmatch(r"final test acc [01]\.\d{3}", lines[-1]), lines[-1]
    assert (tmp_path / "runs" / "train-script-1p" / "meta.json").is_file()


def _bad_inputs(tmp_path: Path) -> dict:
    one, two = str(tiny_parts(tmp_path, 1)), str(tiny_parts(tmp_path, 2))
    return {
        "no such directory": (
            dict(partitions=str(tmp_path / "nope")),
            f"partition directory {tmp_path / 'nope'} does not exist",
        ),
        "wrong part count": (
            dict(partitions=two),
            f"partition directory {two} has 2 parts but the job has 1 process; run with --nproc 2 "
            "(or torchrun --nproc_per_node 2)",
        ),
        "nproc": (
            dict(partitions=one, nproc=2),
            "nproc=2 but this job has 1 process: distgnn.fit trains in the processes that call it; start "
            "them with torchrun --nproc_per_node 2",
        ),
        "model": (dict(partitions=one, model="no_such_module:build"), "no_such_module"),
    }


@pytest.mark.timeout(120)
def test_bad_input_raises_one_distgnn_error_line(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for what, (flat, message) in _bad_inputs(tmp_path).items():
        with pytest.raises(DistGNNError) as err:
            distgnn.fit(distgnn.TrainConfig.from_flat(**flat, **FAST))
        text = str(err.value)
        assert "\n" not in text and message in text, what
    with pytest.raises(DistGNNError, match=r"^layers must be >= 1, got 0$"):
        distgnn.TrainConfig.from_flat(layers=0)
    with pytest.raises(DistGNNError, match=r"^distgnn.fit needs a TrainConfig, got dict$"):
        distgnn.fit({"epochs": 3})
    with pytest.raises(DistGNNError, match=r"^a callback must be callable"):
        distgnn.fit(distgnn.TrainConfig(), callbacks=[3])


def test_import_distgnn_loads_no_torch():
    code = (
        "import sys, distgnn\n"
        "assert distgnn.TrainConfig.from_flat(epochs=3).optim.epochs == 3\n"
        "print('torch' in sys.modules, distgnn.__version__, sorted(distgnn.__all__))\n"
        "from distgnn import fit, register_model, TrainResult\n"
        "print('torch' in sys.modules, fit.__module__, register_model.__module__, TrainResult.__module__)\n"
        "try:\n    distgnn.nothing\nexcept AttributeError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"False {distgnn.__version__} ['TrainConfig', 'TrainResult', '__version__', 'fit', 'register_model']",
        "True distgnn.runtime.api distgnn.models.registry distgnn.train",
        "module 'distgnn' has no attribute 'nothing'",
    ]
