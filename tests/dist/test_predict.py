"""`distgnn predict` and `distgnn export`: a trained model's outputs for every node, in original order.

Checkpoints of graph (2 ranks), pipeline (2 stages) and hybrid (2x2) training, for GCN, SAGE and the GIN
example, are predicted on 2 METIS parts and on 1 part relabelled with --reorder rcm; each output row i
equals node i of a plain dense single-process forward of the same parameters (1e-5). `distgnn export`
then `load_exported` reproduces it in one process. Bad input is one line, exit 2, no output file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import run_ranks
from train_workers import train_many

from distgnn.checkpoint.export import gather_model, save_exported
from distgnn.comm.layout import ProcessLayout
from distgnn.data.synthetic import synthetic_graph
from distgnn.errors import DistGNNError
from distgnn.models import load_exported
from distgnn.models.exported import model_from
from distgnn.partitioning import partition_graph
from distgnn.runtime.predict import PredictJob, predict

IN_DIM, CLASSES, EPOCHS = 12, 4, 3
GRAPH = dict(num_nodes=160, num_edges=1200, num_features=IN_DIM, num_classes=CLASSES, num_train_per_class=12)
MODELS = [
    dict(model="gcn", hidden=8, layers=3),
    dict(model="sage", hidden=8, layers=3),
    dict(model="examples.gin:build", hidden=8, layers=3),
]
BASE = dict(epochs=EPOCHS, dropout=0.5, seed=3, eval_every=EPOCHS, checkpoint_every=EPOCHS, kernel="cpu")
TRAINED = {  # strategy -> (processes, parts, options)
    "graph": (2, 2, {}),
    "pipeline": (2, 1, dict(strategy="pipeline", stages=2)),
    "hybrid": (4, 2, dict(strategy="hybrid", stages=2)),
}


class DenseProp:
    """A single process's propagation over the whole graph in original order, with a dense adjacency."""

    def __init__(self, graph) -> None:
        src, dst = graph.edges()
        n = graph.num_nodes
        self.num_nodes = n
        self.a = torch.zeros(n, n, dtype=torch.float64)
        self.a[torch.as_tensor(dst), torch.as_tensor(src)] = 1.0

    def mask_key(self, site: int) -> None:
        return None

    def aggregate(self, h, *, key: int, norm: str):
        a = self.a
        if norm == "mean":
            a = a / a.sum(1, keepdim=True).clamp(min=1)
        elif norm == "gcn":
            a = a + torch.eye(self.num_nodes, dtype=a.dtype)
            d = a.sum(1).rsqrt()
            a = d[:, None] * a * d[None, :]
        return (a @ h.double()).to(h.dtype)

    def aggregate_linear(self, h, weight, *, key: int, norm: str):
        return self.aggregate(h, key=key, norm=norm) @ weight


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    graph = synthetic_graph(**GRAPH, seed=11)
    root = tmp_path_factory.mktemp("predict")
    dirs = {"p1": str(root / "p1"), "p2": str(root / "p2"), "p1-rcm": str(root / "p1-rcm")}
    partition_graph(graph, 1, dirs["p1"], progress=False)
    partition_graph(graph, 2, dirs["p2"], progress=False)
    partition_graph(graph, 1, dirs["p1-rcm"], reorder="rcm", progress=False)
    ckpts = {}
    for name, (procs, parts, opts) in TRAINED.items():
        configs = []
        for i, m in enumerate(MODELS):
            ckpts[name, i] = str(root / f"ckpt-{name}-{i}")
            configs.append(BASE | m | opts | dict(checkpoint_dir=ckpts[name, i]))
        run_ranks(train_many, procs, dirs[f"p{parts}"], configs, timeout=400)
    return graph, dirs, ckpts, root


def oracle(graph, data: dict) -> np.ndarray:
    model = model_from(data)
    with torch.no_grad():
        return model(torch.as_tensor(graph.x), DenseProp(graph)).numpy()


def _predict_worker(layout, job):
    predict(job, layout)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("strategy", list(TRAINED))
def test_predictions_equal_a_dense_forward_in_original_order(setup, strategy):
    graph, dirs, ckpts, root = setup
    for i, m in enumerate(MODELS):
        data = gather_model(ckpts[strategy, i])
        want = oracle(graph, data)
        for parts, procs in (("p2", 2), ("p1-rcm", 1)):
            out = str(root / f"{strategy}-{i}-{parts}.npy")
            job = PredictJob(model=ckpts[strategy, i], partitions=dirs[parts], out=out)
            if procs == 1:
                predict(job, ProcessLayout.single("cpu"))
            else:
                run_ranks(_predict_worker, procs, job, timeout=120)
            got = np.load(out)
            assert got.shape == (graph.num_nodes, CLASSES) and got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{m} {strategy} on {parts}")


def test_export_then_load_exported_reproduces_them(setup, tmp_path):
    graph, dirs, ckpts, _ = setup
    for i in range(len(MODELS)):
        data = gather_model(ckpts["pipeline", i])  # the stages' parameters gathered into one model
        save_exported(tmp_path / "m.pt", data)
        raw = torch.load(tmp_path / "m.pt", weights_only=True)  # plain tensors and values only
        assert raw["config"]["name"] == MODELS[i]["model"] and raw["epoch"] == EPOCHS
        model = load_exported(tmp_path / "m.pt")
        with torch.no_grad():
            got = model(torch.as_tensor(graph.x), DenseProp(graph)).numpy()
        np.testing.assert_array_equal(got, oracle(graph, data))
        # and an exported file predicts the same as its checkpoint directory
        a, b = tmp_path / "a.npy", tmp_path / "b.npy"
        predict(
            PredictJob(model=str(tmp_path / "m.pt"), partitions=dirs["p1"], out=str(a)),
            ProcessLayout.single("cpu"),
        )
        predict(
            PredictJob(model=ckpts["pipeline", i], partitions=dirs["p1"], out=str(b)),
            ProcessLayout.single("cpu"),
        )
        np.testing.assert_array_equal(np.load(a), np.load(b))


def test_a_layer_gives_the_embeddings_after_it(setup, tmp_path):
    graph, dirs, ckpts, _ = setup
    data = gather_model(ckpts["graph", 0])
    out = tmp_path / "emb.npy"
    predict(
        PredictJob(model=ckpts["graph", 0], partitions=dirs["p1-rcm"], out=str(out), layer=2),
        ProcessLayout.single("cpu"),
    )
    model = model_from(data)
    with torch.no_grad():
        want = model.forward_range(torch.as_tensor(graph.x), DenseProp(graph), 0, 2).numpy()
    np.testing.assert_allclose(np.load(out), want, rtol=1e-5, atol=1e-5)


def test_bad_input_is_one_line_and_leaves_no_file(setup, tmp_path, run_cli):
    graph, dirs, ckpts, root = setup
    other = synthetic_graph(num_nodes=50, num_edges=200, num_features=5, num_classes=2, seed=1)
    partition_graph(other, 1, tmp_path / "other", progress=False)
    out, nope, ckpt = str(tmp_path / "o.npy"), tmp_path / "nope", ckpts["graph", 0]
    cases = [
        (["--checkpoint", str(nope), "--partitions", dirs["p1"]], f"no such file: {nope}"),
        (["--checkpoint", ckpt, "--partitions", str(tmp_path / "other")],
         f"the model was trained on {IN_DIM} features and {CLASSES} classes; {tmp_path / 'other'} has 5 "
         "and 2"),
        (["--checkpoint", ckpts["graph", 0], "--partitions", dirs["p1"], "--layer", "4"],
         "--layer 4: the model has 3 layers"),
        (["--checkpoint", ckpts["graph", 0], "--partitions", dirs["p2"]],
         f"partition directory {dirs['p2']} has 2 parts but the job has 1 process; run with --nproc 2"),
        (["--checkpoint", str(tmp_path), "--partitions", dirs["p1"]],
         f"{tmp_path} holds no complete checkpoint"),
    ]  # fmt: skip
    for argv, message in cases:
        code, _, err = run_cli(["predict", *argv, "--out", out])
        assert (code, err) == (2, f"distgnn predict: error: {message}\n"), argv
        assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*.npy"))
    code, _, err = run_cli(["export", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "m.pt")])
    assert (code, err) == (2, f"distgnn export: error: {tmp_path} holds no complete checkpoint\n")
    assert not (tmp_path / "m.pt").exists()


def test_exported_gcn_and_sage_run_as_pyg_modules(setup, tmp_path):
    pyg = pytest.importorskip("torch_geometric", reason="PyG is a test extra")
    from distgnn.models.pyg import to_pyg

    graph, dirs, ckpts, _ = setup
    src, dst = graph.edges()
    edge_index = torch.as_tensor(np.stack([src, dst]), dtype=torch.int64)  # messages flow src -> dst
    for i in (0, 1):  # GCN, SAGE
        data = gather_model(ckpts["hybrid", i])
        save_exported(tmp_path / "m.pt", data)
        module = to_pyg(load_exported(tmp_path / "m.pt"))
        assert all(type(c).__module__.startswith(pyg.__name__) for c in module.convs)
        with torch.no_grad():
            got = module(torch.as_tensor(graph.x), edge_index).numpy()
        np.testing.assert_allclose(got, oracle(graph, data), rtol=1e-5, atol=1e-5, err_msg=MODELS[i]["model"])
    with pytest.raises(DistGNNError, match="^no PyG equivalent of LayerStack"):
        to_pyg(model_from(gather_model(ckpts["graph", 2])))  # the GIN example
