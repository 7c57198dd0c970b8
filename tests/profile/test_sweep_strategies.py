"""`distgnn profile sweep --strategy graph,pipeline,hybrid`: each row is `profile predict` on its cached
partition (graph: P parts; pipeline: 1 part, P stages; hybrid: S stages x P/S parts), the cache is shared
between strategies, and bad strategy/stage combinations are one line before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from distgnn import jsonio

SMALL = "synthetic:nodes=300,edges=2400,features=12,classes=3"
MODEL = ["--model", "gcn", "--layers", "3", "--hidden", "8"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from distgnn.cli import main

    out = tmp_path_factory.mktemp("sweep-strategies") / "sw"
    argv = ["profile", "sweep", "--dataset", SMALL, "--parts", "2,4,8", "--out", str(out), *MODEL]
    argv += ["--strategy", "graph,pipeline,hybrid", "--stages", "2", "--network", "ib-hdr", "--no-progress"]
    assert main(argv) == 0
    return out, jsonio.loads((out / "sweep.json").read_text())


def test_every_row_equals_predict_on_its_cached_partition(run_cli, swept):
    out, result = swept
    got = {(r["parts"], r["strategy"]): r for r in result["rows"]}
    layouts = {k: (r["graph_parts"], r["stages"]) for k, r in got.items()}
    assert layouts == {
        (2, "graph"): (2, 1),
        (4, "graph"): (4, 1),
        (8, "graph"): (8, 1),
        (2, "pipeline"): (1, 2),
        (2, "hybrid"): (1, 2),
        (4, "hybrid"): (2, 2),
        (8, "hybrid"): (4, 2),
    }
    # 3 layers: a 4- or 8-stage pipeline does not exist; listed, with the reason, not predicted.
    assert [(s["parts"], s["strategy"]) for s in result["skipped"]] == [(4, "pipeline"), (8, "pipeline")]
    # One partition per part count any row needs, shared: hybrid at 4 reads graph at 2's directory.
    cached = sorted(int(d.name.rsplit("-p", 1)[1]) for d in (out / "partitions").iterdir())
    assert cached == [1, 2, 4, 8]
    assert got[4, "hybrid"]["partition"] == got[2, "graph"]["partition"]
    assert got[2, "pipeline"]["partition"] == got[2, "hybrid"]["partition"]
    for (p, strategy), row in got.items():
        argv = ["profile", "predict", "--partitions", row["partition"], "--strategy", strategy, *MODEL]
        argv += ["--stages", str(row["stages"]), "--network", "ib-hdr", "--json"]
        code, text, err = run_cli(argv)
        assert code == 0, err
        want = jsonio.loads(text)
        assert want["world_size"] == p
        memory = [m["total"] for m in want["per_rank_memory_bytes"]]
        assert row["total_bytes"] == want["total_bytes"] > 0
        assert row["straggler_bytes"] == want["straggler"]["bytes"]
        assert row["max_rank_memory_bytes"] == max(memory)
        assert row["mean_rank_memory_bytes"] == pytest.approx(sum(memory) / p)
        assert row["comm_s"] == pytest.approx(want["what_if"]["comm_s"], rel=1e-12)
    # The pipeline moves only its stage boundary: 300 rows of the 8-wide hidden layer, there and back.
    assert got[2, "pipeline"]["total_bytes"] == 2 * 300 * 8 * 4


def test_table_names_each_layout_and_the_skipped_rows(run_cli, swept):
    out, _ = swept
    code, text, err = run_cli(["profile", "report", str(out)])
    assert code == 0, err
    assert "2 st x 4 parts" in text and "8 parts" in text and "2 stages" in text
    assert "not applicable: pipeline at P=4,8: " in text and "the model has 3 layers" in text


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--strategy", "hybrid", "--stages", "2", "--parts", "2,6,9"],
            "P=9 is not a multiple of --stages 2",
        ),
        (["--strategy", "hybrid", "--parts", "2"], "needs --stages S with 2 <= S <= 3"),
        (["--strategy", "graph,hybrid", "--stages", "4", "--parts", "4"], "2 <= S <= 3 (the model's layers)"),
        (
            ["--strategy", "graph,pipeline", "--comm-dtype", "bf16", "--parts", "2"],
            "graph only, not pipeline",
        ),
        (["--strategy", "graph,ring", "--parts", "2"], "unknown strategy 'ring'"),
        (["--strategy", ",", "--parts", "2"], "--strategy needs at least one of"),
    ],
)
def test_bad_strategy_input_is_one_line_and_writes_nothing(run_cli, tmp_path, extra, message):
    out = tmp_path / "sw"
    argv = ["profile", "sweep", "--dataset", SMALL, "--out", str(out), *MODEL, *extra, "--no-progress"]
    code, text, err = run_cli(argv)
    assert code != 0 and text == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not Path(out).exists()
