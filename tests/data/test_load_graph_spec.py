"""load_graph: source specs dispatch to the right loader; bad specs give one line naming the valid keys."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.data import load_graph, save_npz, synthetic_graph
from distgnn.data.sources import SYNTHETIC_KEYS, parse_synthetic
from distgnn.errors import DistGNNError

VALID = "valid keys: " + ", ".join(SYNTHETIC_KEYS)


def _error(spec: str) -> str:
    with pytest.raises(DistGNNError) as err:
        load_graph(spec, progress=False)
    return str(err.value)


def test_synthetic_spec_keys():
    kwargs = parse_synthetic(
        "synthetic:nodes=2e3, edges=10_000,features=8,classes=3,communities=6,homophily=0.5,noise=2,"
        "gamma=2.5,shuffle=false,train=5,val=0.2,test=100,seed=7"
    )
    assert kwargs == {
        "num_nodes": 2000, "num_edges": 10_000, "num_features": 8, "num_classes": 3, "communities": 6,
        "homophily": 0.5, "feature_noise": 2.0, "degree_exponent": 2.5, "shuffle": False,
        "num_train_per_class": 5, "num_val": 0.2, "num_test": 100, "seed": 7,
    }  # fmt: skip
    assert parse_synthetic("synthetic") == {}


def test_synthetic_spec_builds_the_same_graph_as_the_call():
    g = load_graph("synthetic:nodes=1000,edges=6000,features=4,classes=3,seed=2", progress=False)
    h = synthetic_graph(1000, 6000, 4, 3, seed=2)
    assert np.array_equal(g.indices, h.indices) and np.array_equal(g.x, h.x)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:size=10", f"synthetic: unknown key 'size'; {VALID}"),
        ("synthetic:nodes=ten", f"synthetic: bad value 'ten' for nodes (expected an integer); {VALID}"),
        ("synthetic:nodes=1.5", f"synthetic: bad value '1.5' for nodes (expected an integer); {VALID}"),
        (
            "synthetic:shuffle=maybe",
            f"synthetic: bad value 'maybe' for shuffle (expected true or false); {VALID}",
        ),
        ("synthetic:nodes", f"synthetic: expected key=value, got 'nodes'; {VALID}"),
        ("synthetic:homophily=2", "homophily must be in [0, 1], got 2.0"),
    ],
)
def test_bad_synthetic_specs(spec, message):
    assert _error(spec) == message


def test_missing_path():
    assert _error("no/such/graph.npz") == "no such file or directory: no/such/graph.npz"


def test_dispatch_by_path(tmp_path):
    g = synthetic_graph(300, 1200, 3, 3)
    save_npz(g, tmp_path / "g.npz")
    assert np.array_equal(load_graph(str(tmp_path / "g.npz"), progress=False).indices, g.indices)
    (tmp_path / "edges.tsv").write_text("0\t1\n1\t2\n")
    assert load_graph(str(tmp_path / "edges.tsv"), progress=False).num_edges == 4
    (tmp_path / "raw").mkdir()
    message = _error(str(tmp_path / "raw"))
    assert message == f"{tmp_path / 'split'}: expected exactly one split directory, found none"


def test_cora_by_spec(shared_datasets):
    g = load_graph(str(shared_datasets / "cora.npz"), progress=False)
    assert (g.num_nodes, g.num_edges, g.num_classes) == (2708, 10556, 7)


def test_progress_goes_to_stderr_only(capsys, monkeypatch):
    import distgnn.data.progress as progress_mod

    real = progress_mod.tqdm
    # bars appear only after a second; draw at once so a quick load shows where they go
    monkeypatch.setattr(progress_mod, "tqdm", lambda *a, **kw: real(*a, **{**kw, "delay": 0.0}))
    load_graph("synthetic:nodes=500,edges=2000", progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "generating synthetic graph" in captured.err
    load_graph("synthetic:nodes=500,edges=2000", progress=False)
    assert capsys.readouterr() == ("", "")
