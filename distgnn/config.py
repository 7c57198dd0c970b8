"""Training configuration: nested, validated dataclasses shared by the CLI and the trainer.

Each field carries its command-line help in ``metadata`` (:func:`option`), and ``distgnn train``'s options,
the argument list handed to worker processes and the parsed config are all generated from these classes
(``distgnn/commands/options.py``): a new option is written once, here. Flat keyword access for scripts
and tests: :meth:`TrainConfig.from_flat` (``TrainConfig.from_flat(model="gat", stages=2)``).

Torch-free on purpose: the CLI builds every subcommand's parser, and `distgnn partition` should not pay
for importing torch.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from distgnn.errors import DistGNNError

if TYPE_CHECKING:
    import torch

MODELS = ("gcn", "sage", "gat", "deepgcn")  # distgnn.models.registry.MODELS builds each (a test ties the two)
# Another model: a registered name or a factory's import path (``pkg.module:function``), resolved by
# distgnn.models.registry, which says in one line what is wrong with one that does not resolve.
MODEL_NAME = re.compile(r"[A-Za-z_][\w.-]*(:[A-Za-z_][\w.]*)?")
COMM_DTYPES = ("fp32", "bf16", "fp16")
FEATURE_NORMS = ("none", "row")
KERNELS = ("auto", "reference", "cpu", "triton", "torch")  # distgnn.kernels.select.IMPLS
WEIGHT_DECAY_SCOPES = ("all", "first")  # "first": the first layer only, as in the GCN paper
STRATEGIES = ("graph", "pipeline", "hybrid")
HISTORY_DTYPES = ("fp32", "bf16", "fp16")
PRECISIONS = ("fp32", "bf16-mixed")  # distgnn.parallel.precision
CHUNK_ORDERS = ("fixed", "shuffle")
HISTORY_GRADS = ("drop", "defer")
ON_NONFINITE = ("stop", "skip-step")
BEST_BY = ("val_acc", "val_loss", "val_acc_and_loss")
MODEL_LIMITS = {"layers": 4096, "hidden": 65536, "heads": 1024}  # far beyond any published GNN
DEFAULT_TIMEOUT_S = 300.0  # process-group set-up timeout (joining, loading, the first epoch)


def option(help: str, *, flag: str | None = None, metavar: str | None = None, choices: Any = None) -> dict:
    """Field metadata for the generated CLI: help text, flag (default ``--field-name``), metavar, choices.

    A bool field that defaults to True becomes a ``--no-...`` switch (give it as ``flag``).
    """
    return {"help": help, "flag": flag, "metavar": metavar, "choices": choices}


def _choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise DistGNNError(f"{what} must be one of {', '.join(choices)}, got {value!r}")


def _at_least(obj: Any, names: tuple[str, ...], bound: int) -> None:
    for name in names:
        if getattr(obj, name) < bound:
            raise DistGNNError(f"{name.replace('_', '-')} must be >= {bound}, got {getattr(obj, name)}")


@dataclass
class ModelConfig:
    """What model is trained. Defaults: the GCN paper's Cora setup (2 layers, 16 hidden, dropout 0.5)."""

    name: str = field(
        default="gcn",
        metadata=option(
            f"model: {', '.join(MODELS)}, a name given to distgnn.models.register_model, or the import path "
            "of your own model's factory, module:function (a function (ModelConfig, in_dim, out_dim) -> "
            "distgnn.models.LayeredModel; the module is looked up from the current directory too)",
            flag="--model",
            metavar="MODEL",
        ),
    )
    layers: int = field(default=2, metadata=option("layers", metavar="L"))
    hidden: int = field(default=16, metadata=option("hidden width (per head for GAT)", metavar="H"))
    heads: int = field(default=8, metadata=option("GAT heads", metavar="K"))
    dropout: float = field(default=0.5, metadata=option("dropout", metavar="D"))
    attention_dropout: float = field(
        default=0.0,
        metadata=option(
            "GAT: dropout on the attention coefficients (the GAT paper's recipe uses 0.6; exact on every "
            "strategy, like --dropout)",
            metavar="D",
        ),
    )
    alpha: float = field(
        default=0.1, metadata=option("deepgcn (GCNII): weight of the initial residual h0", metavar="A")
    )
    lam: float = field(
        default=0.5,
        metadata=option(
            "deepgcn (GCNII): identity-mapping strength, beta_l = log(lambda / l + 1)",
            flag="--lambda",
            metavar="L",
        ),
    )

    def __post_init__(self) -> None:
        if self.name not in MODELS and not MODEL_NAME.fullmatch(self.name):
            raise DistGNNError(
                f"unknown model {self.name!r}; choose one of {', '.join(MODELS)}, a registered name, or "
                "an import path module:function"
            )
        _at_least(self, ("layers", "hidden", "heads"), 1)
        for name, bound in MODEL_LIMITS.items():  # absurd sizes: one line now, not an allocation failure
            if getattr(self, name) > bound:
                raise DistGNNError(f"{name} must be <= {bound}, got {getattr(self, name)}")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise DistGNNError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise DistGNNError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.lam > 0:
            raise DistGNNError(f"lambda must be > 0, got {self.lam}")


@dataclass
class OptimConfig:
    """How it is optimised: Adam, full-graph, one step per epoch."""

    epochs: int = field(default=200, metadata=option("epochs", metavar="E"))
    lr: float = field(default=0.01, metadata=option("Adam learning rate"))
    weight_decay: float = field(default=5e-4, metadata=option("L2", metavar="WD"))
    conv_weight_decay: float | None = field(
        default=None,
        metadata=option(
            "L2 on the propagation layers' weights instead (GCNII's recipe: 0.01 on its convolutions, "
            "--weight-decay on the input and output layers); default: --weight-decay",
            metavar="WD",
        ),
    )
    weight_decay_scope: str = field(
        default="all",
        metadata=option(
            "parameters the L2 applies to: all, or first (the first layer only, as in the GCN paper and "
            "PyG's Planetoid example)",
            choices=WEIGHT_DECAY_SCOPES,
        ),
    )
    feature_norm: str = field(
        default="none",
        metadata=option(
            "row: scale each node's features to sum 1, as in the GCN paper", choices=FEATURE_NORMS
        ),
    )
    seed: int = field(default=0, metadata=option("seed for initialisation and dropout masks", metavar="S"))
    deterministic: bool = field(default=False, metadata=option("torch.use_deterministic_algorithms(True)"))
    lr_warmup_epochs: int = field(
        default=0,
        metadata=option(
            "raise the learning rate linearly from lr/K to lr over the first K epochs", metavar="K"
        ),
    )

    def __post_init__(self) -> None:
        _at_least(self, ("epochs",), 1)
        _at_least(self, ("lr_warmup_epochs",), 0)
        if not self.lr > 0:
            raise DistGNNError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise DistGNNError(f"weight-decay must be >= 0, got {self.weight_decay}")
        if self.conv_weight_decay is not None and self.conv_weight_decay < 0:
            raise DistGNNError(f"conv-weight-decay must be >= 0, got {self.conv_weight_decay}")
        _choice(self.weight_decay_scope, WEIGHT_DECAY_SCOPES, "weight-decay-scope")
        _choice(self.feature_norm, FEATURE_NORMS, "feature-norm")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based): linear warm-up over ``lr_warmup_epochs``, then ``lr``."""
        k = self.lr_warmup_epochs
        return self.lr * min(1.0, (epoch + 1) / k) if k else self.lr


@dataclass
class ParallelConfig:
    """How the work is split over processes: strategy, stages, chunks, and the explicit approximations."""

    strategy: str = field(
        default="graph",
        metadata=option(
            "graph: one partition per process, every layer; pipeline: a range of layers per process over the "
            "whole graph (1-part partition directory), chunks streaming through the stages; hybrid: stages x "
            "graph partitions",
            choices=STRATEGIES,
        ),
    )
    stages: int = field(default=1, metadata=option("pipeline stages (pipeline, hybrid)", metavar="S"))
    chunks: int = field(
        default=1, metadata=option("graph chunks streaming through the pipeline (METIS-cut)", metavar="C")
    )
    stage_layers: tuple[int, ...] | None = field(
        default=None,
        metadata=option(
            "layers per stage, e.g. 3,3,2 (default: balanced by a cost model)", metavar="N,N,..."
        ),
    )
    history_dtype: str = field(
        default="fp32",
        metadata=option(
            "storage of the historical-embedding cache (16-bit: approximate)", choices=HISTORY_DTYPES
        ),
    )
    exact_epochs: int = field(
        default=0, metadata=option("warm-up epochs without history (epoch 0 always is)", metavar="K")
    )
    chunk_order: str = field(
        default="fixed",
        metadata=option(
            "order of the chunks each epoch: fixed, or shuffle (a new order per epoch from the seed, the "
            "same on every rank), which changes which neighbours are read from history",
            choices=CHUNK_ORDERS,
        ),
    )
    history_grad: str = field(
        default="drop",
        metadata=option(
            "gradients of historical rows: drop (they are constants), or defer (PipeGCN-style: applied to "
            "those rows one epoch late)",
            choices=HISTORY_GRADS,
        ),
    )
    halo_staleness: int = field(
        default=0,
        metadata=option(
            "1: use one-epoch-stale halo rows/gradients, overlapping all communication (approximate)",
            choices=(0, 1),
        ),
    )
    comm_dtype: str = field(default="fp32", metadata=option("halo wire format", choices=COMM_DTYPES))
    overlap: bool = field(
        default=True, metadata=option("exchange halos before aggregating (no overlap)", flag="--no-overlap")
    )
    kernel: str = field(default="auto", metadata=option("aggregation kernel", choices=KERNELS))
    precision: str = field(
        default="fp32",
        metadata=option(
            "compute precision: fp32, or bf16-mixed (activations, aggregated rows, halo and stage-to-stage "
            "messages in bfloat16; parameters, optimiser state, accumulation, softmax and loss in float32; "
            "approximate)",
            choices=PRECISIONS,
        ),
    )

    def __post_init__(self) -> None:
        _choice(self.strategy, STRATEGIES, "strategy")
        if self.stages < 1 or self.chunks < 1:
            raise DistGNNError(
                f"stages and chunks must be >= 1, got stages={self.stages}, chunks={self.chunks}"
            )
        if self.strategy == "graph" and (self.stages != 1 or self.chunks != 1):
            raise DistGNNError("--stages and --chunks need --strategy pipeline or hybrid")
        _choice(self.history_dtype, HISTORY_DTYPES, "history-dtype")
        _at_least(self, ("exact_epochs",), 0)
        _choice(self.chunk_order, CHUNK_ORDERS, "chunk-order")
        _choice(self.history_grad, HISTORY_GRADS, "history-grad")
        if self.stage_layers is not None:
            self.stage_layers = tuple(int(v) for v in self.stage_layers)
            if len(self.stage_layers) != self.stages or min(self.stage_layers) < 1:
                raise DistGNNError(
                    f"--stage-layers needs {self.stages} positive layer counts, got {list(self.stage_layers)}"
                )
        if self.halo_staleness not in (0, 1):
            raise DistGNNError(f"halo-staleness must be 0 or 1, got {self.halo_staleness}")
        _choice(self.comm_dtype, COMM_DTYPES, "comm-dtype")
        if self.strategy != "graph" and (
            self.halo_staleness or self.comm_dtype != "fp32" or not self.overlap
        ):
            raise DistGNNError(
                "--halo-staleness, --comm-dtype and --no-overlap apply to --strategy graph only "
                f"(the {self.strategy} strategy reads stale rows from its history cache instead)"
            )
        _choice(self.kernel, KERNELS, "kernel")
        _choice(self.precision, PRECISIONS, "precision")

    @property
    def torch_comm_dtype(self) -> torch.dtype:
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.comm_dtype]


@dataclass
class RunConfig:
    """Bookkeeping: evaluation, checkpoints, metrics, progress."""

    eval_every: int = field(default=1, metadata=option("evaluate every N epochs", metavar="N"))
    checkpoint_dir: str | None = field(
        default=None, metadata=option("where checkpoints go (one file per rank)", metavar="DIR")
    )
    checkpoint_every: int = field(default=0, metadata=option("checkpoint every K epochs", metavar="K"))
    resume: bool = field(
        default=False, metadata=option("continue from the newest checkpoint in --checkpoint-dir")
    )
    metrics_out: str | None = field(
        default=None, metadata=option("JSON lines, one per epoch (written by rank 0)", metavar="FILE")
    )
    profile_out: str | None = field(
        default=None,
        metadata=option("measured communication profile, one JSON file (rank 0)", metavar="FILE"),
    )
    tensorboard: str | None = field(
        default=None,
        metadata=option(
            "TensorBoard scalars per epoch into DIR (rank 0; needs the tensorboard package): loss, "
            "accuracies, epoch time, communication; a resume rewrites the epochs after its checkpoint",
            metavar="DIR",
        ),
    )
    trace: str | None = field(
        default=None, metadata=option("torch.profiler Chrome trace per rank into DIR", metavar="DIR")
    )
    progress: bool = field(
        default=True, metadata=option("no progress bar or summary table", flag="--no-progress")
    )
    keep_checkpoints: int = field(
        default=2, metadata=option("complete checkpoints kept on disk (0: all)", metavar="N")
    )
    checkpoint_on_exit: bool = field(
        default=False,
        metadata=option("on SIGINT/SIGTERM, checkpoint the last finished epoch before exiting"),
    )
    on_nonfinite: str = field(
        default="stop",
        metadata=option(
            "a NaN/Inf loss or gradient: stop (one error naming the epoch and ranks) or skip-step (no "
            "optimiser step that epoch; one more 1-value all-reduce per epoch)",
            choices=ON_NONFINITE,
        ),
    )
    patience: int = field(
        default=0,
        metadata=option(
            "stop once the best validation accuracy (or loss: --best-by) is K epochs old (0: train every "
            "--epochs); the ranks stop together, after the same epoch",
            metavar="K",
        ),
    )
    best_by: str = field(
        default="val_acc",
        metadata=option(
            "which epoch is the best: the highest validation accuracy, the lowest validation loss, or "
            "(val_acc_and_loss, the GAT paper's rule) the last epoch at least as good as every earlier one "
            "in both, with --patience counting from the last epoch at least as good in either; what "
            "--patience watches and the summary's 'test acc at best val' reports",
            choices=BEST_BY,
        ),
    )
    collective_timeout: float = field(
        default=20.0,
        metadata=option(
            "after the first epoch, a rank waiting longer than SEC for a peer in a collective stops the job "
            "(a peer that hangs without dying); setup and the first epoch use --timeout",
            metavar="SEC",
        ),
    )

    def __post_init__(self) -> None:
        _at_least(self, ("eval_every",), 1)
        _at_least(self, ("checkpoint_every", "keep_checkpoints", "patience"), 0)
        if self.checkpoint_on_exit and not self.checkpoint_dir:
            raise DistGNNError("--checkpoint-on-exit needs --checkpoint-dir")
        _choice(self.on_nonfinite, ON_NONFINITE, "on-nonfinite")
        _choice(self.best_by, BEST_BY, "best-by")
        if not self.collective_timeout > 0:
            raise DistGNNError(f"collective-timeout must be > 0 seconds, got {self.collective_timeout}")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise DistGNNError("--checkpoint-every needs --checkpoint-dir")
        if self.resume and not self.checkpoint_dir:
            raise DistGNNError("--resume needs --checkpoint-dir")


@dataclass
class JobConfig:
    """Where the job's data is and how its processes start: what every launcher hands its workers."""

    partitions: str | None = field(
        default=None,
        metadata=option(
            "partition directory (default: the synthetic graph, partitioned into runs/)", metavar="DIR"
        ),
    )
    nproc: int | None = field(
        default=None, metadata=option("start P local worker processes (torch elastic)", metavar="P")
    )
    max_restarts: int = field(
        default=0,
        metadata=option(
            "with --nproc: restart the worker group up to K times when a worker dies; it resumes from the "
            "newest complete checkpoint in --checkpoint-dir (under torchrun: torchrun --max-restarts)",
            metavar="K",
        ),
    )
    timeout: float = field(
        default=DEFAULT_TIMEOUT_S,
        metadata=option("process-group timeout: a dead peer ends the job after SEC", metavar="SEC"),
    )

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise DistGNNError(f"timeout must be > 0 seconds, got {self.timeout}")
        _at_least(self, ("max_restarts",), 0)
        if self.nproc is not None:
            _at_least(self, ("nproc",), 1)


SECTIONS = ("model", "optim", "parallel", "run", "job")


@dataclass(frozen=True)
class JobShape:
    """A job's processes as a grid: ``stages`` pipeline stages x ``parts`` graph parts = ``world``.

    World rank ``r = stage * parts + part`` (torch's ``DeviceMesh`` ``("pipe", "graph")``, row-major).
    Built once from the config and the process count (:meth:`of`, which says in one line why a shape is
    impossible) and handed to whatever needs the rank map: the launchers, preflight, the mesh.
    """

    strategy: str
    stages: int
    parts: int

    @classmethod
    def of(cls, parallel: ParallelConfig, world: int) -> JobShape:
        """The shape of ``world`` processes running ``parallel``'s strategy; one clear error if none."""
        stages = parallel.stages
        if parallel.strategy == "pipeline" and world != stages:
            raise DistGNNError(
                f"--strategy pipeline runs one process per stage: {stages} stages need {stages} processes, "
                f"the job has {world}"
            )
        if world < 1 or world % stages:
            raise DistGNNError(
                f"{world} processes cannot run {stages} pipeline stages: the process count must be "
                "stages x graph parts"
            )
        return cls(parallel.strategy, stages, world // stages)

    @property
    def world(self) -> int:
        return self.stages * self.parts

    def stage_part(self, rank: int) -> tuple[int, int]:
        """(stage, graph part) of world rank ``rank``."""
        if not 0 <= rank < self.world:
            raise DistGNNError(f"rank {rank} is outside a job of {self.world} processes")
        return divmod(rank, self.parts)

    def rank(self, stage: int, part: int) -> int:
        """The world rank of (stage, part)."""
        return stage * self.parts + part


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes (and what a checkpoint must agree with), and
    the job it runs in (``job``: where the partitions are, how many processes, their timeout)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    run: RunConfig = field(default_factory=RunConfig)
    job: JobConfig = field(default_factory=JobConfig)

    def __post_init__(self) -> None:
        p = self.parallel
        if p.strategy != "graph" and p.stages > self.model.layers:
            raise DistGNNError(
                f"{p.stages} pipeline stages need at least {p.stages} layers, got {self.model.layers}"
            )

    @classmethod
    def from_flat(cls, **values: Any) -> TrainConfig:
        """Build from flat keywords (field names; ``model`` is the model family's name)."""
        routed: dict[str, dict] = {s: {} for s in SECTIONS}
        for key, value in values.items():
            section, name = flat_field(key)
            routed[section][name] = value
        sections = {s: section_type(s)(**routed[s]) for s in SECTIONS}
        return cls(**sections)

    def flat(self) -> dict[str, Any]:
        """The config as flat keywords (the inverse of :meth:`from_flat`)."""
        out = {}
        for s in SECTIONS:
            for name, value in asdict(getattr(self, s)).items():
                out["model" if (s, name) == ("model", "name") else name] = value
        return out

    def model_signature(self) -> dict:
        """The fields a checkpoint must match to be resumed (the shape of the model and optimiser)."""
        keys = (
            "model", "layers", "hidden", "heads", "lr", "weight_decay", "weight_decay_scope",
            "halo_staleness", "seed", "strategy", "stages", "chunks", "history_dtype", "history_grad",
            "lr_warmup_epochs", "alpha", "lam", "conv_weight_decay",
        )  # fmt: skip
        # Not precision: parameters and optimiser state are float32 under every precision, so a run may
        # resume at another one.
        d = self.flat()
        return {k: d[k] for k in keys}


def section_type(section: str) -> type:
    return {f.name: f.default_factory for f in fields(TrainConfig)}[section]  # type: ignore[return-value]


def flat_field(key: str) -> tuple[str, str]:
    """(section, field) of a flat keyword; one clear error for an unknown one."""
    if key == "model":
        return "model", "name"
    for s in SECTIONS:
        if key in {f.name for f in fields(section_type(s))} and key != "name":
            return s, key
    raise DistGNNError(f"unknown training option {key!r}")
