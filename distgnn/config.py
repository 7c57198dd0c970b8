"""Training configuration: one validated dataclass shared by the CLI and the trainer.

Torch-free on purpose: the CLI builds every subcommand's parser, and `distgnn partition` should not pay
for importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from distgnn.errors import DistGNNError

if TYPE_CHECKING:
    import torch

MODELS = ("gcn", "sage", "gat", "deepgcn")  # distgnn.models.registry.MODELS builds each (a test ties the two)
COMM_DTYPES = ("fp32", "bf16", "fp16")
FEATURE_NORMS = ("none", "row")
KERNELS = ("auto", "reference", "cpu", "triton")
STRATEGIES = ("graph", "pipeline", "hybrid")
HISTORY_DTYPES = ("fp32", "bf16", "fp16")
WEIGHT_DECAY_SCOPES = ("all", "first")  # "first": the first layer only, as in the GCN paper


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes (and what a checkpoint must agree with).

    Defaults are the GCN paper's Cora setup: 2 layers, 16 hidden, 200 epochs, Adam lr 0.01, weight
    decay 5e-4, dropout 0.5.
    """

    model: str = "gcn"
    layers: int = 2
    hidden: int = 16
    heads: int = 8
    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    weight_decay_scope: str = "all"
    dropout: float = 0.5
    feature_norm: str = "none"
    seed: int = 0
    deterministic: bool = False
    halo_staleness: int = 0
    comm_dtype: str = "fp32"
    overlap: bool = True
    kernel: str = "auto"
    strategy: str = "graph"
    stages: int = 1
    chunks: int = 1
    stage_layers: tuple[int, ...] | None = None  # layers per stage (default: balanced by a cost model)
    history_dtype: str = "fp32"
    exact_epochs: int = 0  # warm-up epochs without history (epoch 0 always is)
    eval_every: int = 1
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    metrics_out: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise DistGNNError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        for name in ("layers", "hidden", "heads", "epochs", "eval_every"):
            if getattr(self, name) < 1:
                raise DistGNNError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise DistGNNError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise DistGNNError(f"weight-decay must be >= 0, got {self.weight_decay}")
        if self.weight_decay_scope not in WEIGHT_DECAY_SCOPES:
            raise DistGNNError(
                f"weight-decay-scope must be one of {', '.join(WEIGHT_DECAY_SCOPES)}, "
                f"got {self.weight_decay_scope!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise DistGNNError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.feature_norm not in FEATURE_NORMS:
            choices = ", ".join(FEATURE_NORMS)
            raise DistGNNError(f"feature-norm must be one of {choices}, got {self.feature_norm!r}")
        if self.halo_staleness not in (0, 1):
            raise DistGNNError(f"halo-staleness must be 0 or 1, got {self.halo_staleness}")
        if self.comm_dtype not in COMM_DTYPES:
            raise DistGNNError(f"comm-dtype must be one of {', '.join(COMM_DTYPES)}, got {self.comm_dtype!r}")
        if self.strategy not in STRATEGIES:
            raise DistGNNError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.stages < 1 or self.chunks < 1:
            raise DistGNNError(
                f"stages and chunks must be >= 1, got stages={self.stages}, chunks={self.chunks}"
            )
        if self.strategy == "graph" and (self.stages != 1 or self.chunks != 1):
            raise DistGNNError("--stages and --chunks need --strategy pipeline or hybrid")
        if self.history_dtype not in HISTORY_DTYPES:
            raise DistGNNError(
                f"history-dtype must be one of {', '.join(HISTORY_DTYPES)}, got {self.history_dtype!r}"
            )
        if self.exact_epochs < 0:
            raise DistGNNError(f"exact-epochs must be >= 0, got {self.exact_epochs}")
        if self.stage_layers is not None:
            self.stage_layers = tuple(int(v) for v in self.stage_layers)
            if len(self.stage_layers) != self.stages or min(self.stage_layers) < 1:
                raise DistGNNError(
                    f"--stage-layers needs {self.stages} positive layer counts, got {list(self.stage_layers)}"
                )
        if self.strategy != "graph" and self.stages > self.layers:
            raise DistGNNError(
                f"{self.stages} pipeline stages need at least {self.stages} layers, got {self.layers}"
            )
        if self.kernel not in KERNELS:
            raise DistGNNError(f"kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if self.checkpoint_every < 0:
            raise DistGNNError(f"checkpoint-every must be >= 0, got {self.checkpoint_every}")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise DistGNNError("--checkpoint-every needs --checkpoint-dir")
        if self.resume and not self.checkpoint_dir:
            raise DistGNNError("--resume needs --checkpoint-dir")

    @property
    def torch_comm_dtype(self) -> torch.dtype:
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.comm_dtype]

    def model_signature(self) -> dict:
        """The fields a checkpoint must match to be resumed (the shape of the model and optimiser)."""
        keys = (
            "model", "layers", "hidden", "heads", "lr", "weight_decay", "weight_decay_scope",
            "halo_staleness", "seed", "strategy", "stages", "chunks", "history_dtype",
        )  # fmt: skip
        d = asdict(self)
        return {k: d[k] for k in keys}
