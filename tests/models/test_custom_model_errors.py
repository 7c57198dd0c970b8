"""A model of yours that does not resolve, whose factory raises, that is no LayeredModel or that breaks
the contract: one line and exit 2 from ``distgnn train`` (and ``profile predict``), before any rank starts;
a registered name builds in this process."""

from __future__ import annotations

import pytest
import torch

from distgnn.config import TrainConfig
from distgnn.data.synthetic import synthetic_graph
from distgnn.errors import DistGNNError
from distgnn.models import LayerStack, build_model, register_model
from distgnn.partitioning import partition_graph

P = "--model"
BAD = [
    ("nosuchmod:build", "--model nosuchmod:build: cannot import nosuchmod: ModuleNotFoundError: No module "
     "named 'nosuchmod'"),
    ("examples.gin:nope", "--model examples.gin:nope: examples.gin has no attribute 'nope'"),
    ("examples.gin:GINConv.aggregation_norm", "--model examples.gin:GINConv.aggregation_norm: "
     "GINConv.aggregation_norm is not a function"),
    ("custom_bad:raises", "--model custom_bad:raises: the factory raised ValueError: hidden must be even"),
    ("custom_bad:not_layered", "--model custom_bad:not_layered: the factory returned Linear, not a "
     "distgnn.models.LayeredModel (docs/models.md)"),
    ("custom_bad:wrong_width", "custom_bad:wrong_width: recorded exchange widths [8, 16, 16] disagree with "
     "the model's exchange_widths() [9, 16, 16]"),
    ("custom_bad:crashes", "--model custom_bad:crashes breaks the model contract (docs/models.md): "
     "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x8 and 11x4)"),
    ("mlp", "unknown model 'mlp'; choose one of gcn, sage, gat, deepgcn, or give an import path "
     "module:function"),
]  # fmt: skip


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    graph = synthetic_graph(num_nodes=60, num_edges=300, num_features=8, num_classes=4, seed=1)
    out = tmp_path_factory.mktemp("custom-errors") / "p2"
    partition_graph(graph, 2, out, progress=False)
    return str(out)


@pytest.mark.parametrize("model, message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_model_is_one_line_before_any_rank(run_cli, parts, model, message, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    started = []
    monkeypatch.setattr("distgnn.runtime.launcher.launch_local", lambda cfg: started.append(cfg) or 0)
    argv = ["train", "--partitions", parts, "--nproc", "2", P, model, "--layers", "3", "--hidden", "16"]
    code, _, err = run_cli(argv)
    assert (code, err) == (2, f"distgnn train: error: {message}\n")
    assert started == []  # the launcher never started
    code, _, err = run_cli(
        ["profile", "predict", "--partitions", parts, P, model, "--layers", "3", "--hidden", "16"]
    )
    assert code == 2 and len(err.splitlines()) == 1, err


def test_a_good_model_of_yours_reaches_the_launcher(run_cli, parts, monkeypatch):
    started = []
    monkeypatch.setattr("distgnn.runtime.launcher.launch_local", lambda cfg: started.append(cfg) or 0)
    code, _, err = run_cli(["train", "--partitions", parts, "--nproc", "2", P, "examples.gin:build"])
    assert (code, err) == (0, "")
    assert started[0].model.name == "examples.gin:build"


def test_a_registered_model_builds_by_name(monkeypatch):
    from examples.gin import build

    monkeypatch.setattr("distgnn.models.registry._REGISTERED", {})  # this test's names end with it
    register_model("my-gin", build)
    model = build_model("my-gin", 8, 16, 4, layers=3, dropout=0.1)
    assert isinstance(model, LayerStack) and model.num_layers == 3
    assert TrainConfig.from_flat(model="my-gin").model.name == "my-gin"
    torch.manual_seed(0)
    a = build_model("my-gin", 8, 16, 4, layers=3)
    torch.manual_seed(0)
    b = build_model("examples.gin:build", 8, 16, 4, layers=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(DistGNNError, match="^cannot register 'gcn': built-in model names and import paths"):
        register_model("gcn", build)
