"""Per-epoch metrics: distributed accuracy counts, the JSON-lines writer and the final summary table.

Accuracies are computed without gathering the graph: each rank counts correct predictions and labelled
nodes of each split over the rows it owns, and one all-reduce sums the counts.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from distgnn import jsonio
from distgnn.errors import DistGNNError

EPOCH_KEYS = (
    "epoch",
    "loss",
    "train_acc",
    "val_acc",
    "test_acc",
    "val_loss",
    "epoch_s",
    "compute_s",
    "comm_s",
    "exposed_comm_s",
    "comm_bytes",
)


BEST_BY_LABELS = {"val_acc": "acc", "val_loss": "loss", "val_acc_and_loss": "acc and loss"}
EVAL_WIDTH = 7  # what an evaluation sums over ranks: (correct, total) per split, then the val loss sum


def evaluation_counts(logits: Tensor, y: Tensor, masks: Sequence[Tensor]) -> Tensor:
    """float64 [EVAL_WIDTH]: :func:`correct_counts` of the train/val/test ``masks``, then the summed
    cross-entropy over this rank's validation rows (divided by the summed total after the reduction)."""
    val = masks[1]
    nll = F.cross_entropy(logits.float(), y.clamp(min=0), reduction="none")
    val_loss = torch.where(val, nll, torch.zeros_like(nll)).sum()
    return torch.cat([correct_counts(logits, y, masks), val_loss.to(torch.float64).reshape(1)])


def evaluated_metrics(row: Sequence[float]) -> tuple[list[float], float]:
    """The summed :func:`evaluation_counts` as (train/val/test accuracies, validation loss)."""
    return accuracies(row[:6]), row[6] / row[3] if row[3] else math.nan


def selection(history: Sequence[dict], by: str = "val_acc") -> tuple[dict | None, int]:
    """(The best evaluated record, the epoch of the last improvement: what ``--patience`` counts from).

    ``val_acc``: the first record with the highest validation accuracy; ``val_loss``: the first with the
    lowest validation loss (improvements are strict). ``val_acc_and_loss``, the GAT paper's rule: the last
    record whose accuracy and loss both match or beat the best seen before it, where a record that matches
    or beats either one is an improvement. None (and 0) before any evaluation.
    """
    best, improved = None, 0
    top_acc, low_loss = -math.inf, math.inf
    for r in history:
        acc, loss = r["val_acc"], r["val_loss"]
        if math.isnan(acc):
            continue
        if by == "val_acc":
            chosen = better = acc > top_acc
        elif by == "val_loss":
            chosen = better = loss < low_loss
        else:
            chosen, better = acc >= top_acc and loss <= low_loss, acc >= top_acc or loss <= low_loss
        if chosen:
            best = r
        if better:
            improved = r["epoch"]
        top_acc, low_loss = max(top_acc, acc), min(low_loss, loss)
    return best, improved


def best_record(history: Sequence[dict], by: str = "val_acc") -> dict | None:
    """The best evaluated record by ``by`` (see :func:`selection`); None before any evaluation."""
    return selection(history, by)[0]


def correct_counts(logits: Tensor, y: Tensor, masks: Sequence[Tensor]) -> Tensor:
    """float64 [2 * len(masks)]: (correct, total) for each mask, over this rank's rows.

    Masked sums, not boolean indexing: the counts stay on the logits' device with no host sync (a
    boolean index needs the number of selected rows on the host).
    """
    hit = logits.argmax(dim=1) == y
    out = []
    for m in masks:
        out += [(hit & m).sum(), m.sum()]
    return torch.stack(out).to(torch.float64)


def accuracies(counts: Tensor | Sequence[float]) -> list[float]:
    """Turn summed (correct, total) pairs into accuracies (NaN for an empty split)."""
    c = counts.tolist() if isinstance(counts, Tensor) else list(counts)
    return [c[i] / c[i + 1] if c[i + 1] else math.nan for i in range(0, len(c), 2)]


class MetricsWriter:
    """One JSON object per line, flushed after each epoch, so a crashed run keeps what it measured.

    Lines are strict JSON: a value that is absent (the accuracies of an epoch that was not evaluated,
    NaN in memory) is written as ``null``.

    On resume the file is cut back (atomically) to the epochs before ``keep_through`` + 1, so the
    finished file matches an uninterrupted run line for line.
    """

    def __init__(self, path: str | os.PathLike, *, keep_through: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_through > 0 and self.path.exists():
            try:
                for line in self.path.read_text().splitlines():
                    if line.strip() and json.loads(line)["epoch"] <= keep_through:
                        kept.append(line + "\n")
            except (ValueError, KeyError, TypeError) as err:  # not JSON lines of ours: one line, no traceback
                raise DistGNNError(
                    f"--metrics-out {self.path} is not a distgnn metrics file: {type(err).__name__}: {err}"
                ) from None
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as f:
            f.writelines(kept)
        os.replace(tmp, self.path)
        self._file = open(self.path, "a")  # noqa: SIM115 - held open for the run, closed in close()

    def write(self, record: dict) -> None:
        self._file.write(jsonio.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


TENSORBOARD_MISSING = "--tensorboard needs the tensorboard package: pip install 'distgnn[tensorboard]'"

# The TensorBoard scalar each record key becomes: every EPOCH_KEYS entry but "epoch", the step.
TENSORBOARD_TAGS = {
    "loss": "loss/train",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "test_acc": "accuracy/test",
    "val_loss": "loss/val",
    "epoch_s": "time/epoch_s",
    "compute_s": "time/compute_s",
    "comm_s": "comm/time_s",
    "exposed_comm_s": "comm/exposed_s",
    "comm_bytes": "comm/bytes",
}


def summary_writer_class() -> type:
    """torch's ``SummaryWriter``; one-line DistGNNError if the optional ``tensorboard`` package is absent
    (torch's own ImportError names no fix)."""
    try:
        import tensorboard  # noqa: F401 - what torch.utils.tensorboard needs
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise DistGNNError(TENSORBOARD_MISSING) from None
    return SummaryWriter


class TensorBoardWriter:
    """The same per-epoch records as :class:`MetricsWriter`, as TensorBoard scalars in ``log_dir``
    (torch's ``SummaryWriter``): step = the record's epoch, tags from :data:`TENSORBOARD_TAGS`.

    A value that is absent (the accuracies of an epoch that was not evaluated) is not written. TensorBoard
    stores scalars as float32. Flushed after each record, so a crashed run keeps what it measured.

    On resume the epochs after ``keep_through`` are written again into a new event file of the same
    directory; the writer marks the restart (``purge_step``) and TensorBoard shows the newest values.
    """

    def __init__(self, log_dir: str | os.PathLike, *, keep_through: int = 0) -> None:
        writer = summary_writer_class()
        self.log_dir = Path(log_dir)
        self._writer = writer(
            log_dir=str(self.log_dir), purge_step=keep_through + 1 if keep_through else None
        )

    def write(self, record: dict) -> None:
        step = int(record["epoch"])
        for key, tag in TENSORBOARD_TAGS.items():
            value = record.get(key)
            if value is not None and not math.isnan(value):
                self._writer.add_scalar(tag, float(value), global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def summarize(history: Sequence[dict], best_by: str = "val_acc") -> dict:
    """The best validation epoch (by ``best_by``), the test accuracy there, final test accuracy, timing
    and traffic."""
    best = best_record(history, best_by)
    # The first epoch pays one-off costs (allocator, kernel selection); leave it out of the mean when
    # there is more than one.
    timed = history[1:] if len(history) > 1 else history
    mean_epoch = sum(r["epoch_s"] for r in timed) / max(len(timed), 1)
    comm = sum(r["exposed_comm_s"] + r.get("grad_sync_s", 0.0) for r in timed) / max(len(timed), 1)
    return {
        "epochs": len(history),
        "best_by": best_by,
        "best_val_acc": best["val_acc"] if best else math.nan,
        "best_val_loss": best["val_loss"] if best else math.nan,
        "best_val_epoch": best["epoch"] if best else None,
        "test_acc_at_best_val": best["test_acc"] if best else math.nan,
        "final_test_acc": history[-1]["test_acc"] if history else math.nan,
        "final_loss": history[-1]["loss"] if history else math.nan,
        "mean_epoch_s": mean_epoch,
        "comm_share": comm / mean_epoch if mean_epoch > 0 else 0.0,
        "comm_bytes_per_epoch": sum(r["comm_bytes"] for r in history) / max(len(history), 1),
    }


def format_summary(summary: dict) -> str:
    """A small two-column table for the terminal."""
    rows = [
        ("epochs", f"{summary['epochs']}"),
        (
            f"best val ({BEST_BY_LABELS[summary['best_by']]})",
            f"{100 * summary['best_val_acc']:.2f}%, loss {summary['best_val_loss']:.4f} "
            f"(epoch {summary['best_val_epoch']})",
        ),
        ("test acc at best val", f"{100 * summary['test_acc_at_best_val']:.2f}%"),
        ("final test acc", f"{100 * summary['final_test_acc']:.2f}%"),
        ("final loss", f"{summary['final_loss']:.4f}"),
        ("mean epoch time", f"{1000 * summary['mean_epoch_s']:.2f} ms"),
        ("comm share (exposed)", f"{100 * summary['comm_share']:.1f}%"),
        ("halo bytes / epoch", human_bytes(summary["comm_bytes_per_epoch"])),
    ]
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    return "\n".join([line, *(f"{k:<{width}}  {v}" for k, v in rows), line])


def human_bytes(n: float) -> str:
    """Bytes with a binary unit (B, KiB, MiB, GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"
