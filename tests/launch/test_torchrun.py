"""launch/torchrun.sh: two torchrun agents on 127.0.0.1 (c10d rendezvous) train like --nproc 2."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from launch_helpers import REPO, TRAIN_ARGS, free_port, launcher_env, losses, nproc_reference, tiny_parts

SCRIPT = REPO / "launch" / "torchrun.sh"


def start_nodes(part_dirs: list, metrics, port: int, pg_timeout: int = 120) -> list[subprocess.Popen]:
    """One launch/torchrun.sh per "node" (both on this machine), 1 process each, 2 nodes."""
    env = launcher_env(NNODES="2", RDZV_ENDPOINT=f"127.0.0.1:{port}", RDZV_ID=f"test-{port}")
    return [
        subprocess.Popen(
            [
                "bash",
                str(SCRIPT),
                "--nproc",
                "1",
                "--",
                "--partitions",
                str(d),
                *TRAIN_ARGS,
                "--metrics-out",
                str(metrics),
                "--timeout",
                str(pg_timeout),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for d in part_dirs
    ]


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    out = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        out.append((p.returncode, err))
    return out


def node_subset(parts, node, ranks: tuple[int, ...]):
    """What ``distgnn partition``'s output looks like copied to a node: meta.json and its own parts."""
    node.mkdir()
    shutil.copy(parts / "meta.json", node)
    for rank in ranks:
        shutil.copytree(parts / f"part-{rank}", node / f"part-{rank}")
    return node


@pytest.mark.slow  # two torchrun agents (and the shared --nproc 2 run): scheduled first (tests/conftest.py)
@pytest.mark.timeout(400)
def test_two_torchrun_nodes_match_nproc_2(tmp_path, shared_tmp):
    # Node 0 reads the shared directory; node 1 holds only meta.json and part-1 (both ways of giving
    # nodes their data, in one job).
    parts, expected = nproc_reference(shared_tmp)  # the --nproc 2 run (shared with test_ray.py)
    metrics = tmp_path / "nnodes2.jsonl"
    nodes = [parts, node_subset(parts, tmp_path / "node1", (1,))]
    results = wait_all(start_nodes(nodes, metrics, free_port()), timeout=300)
    for code, err in results:
        assert code == 0, err[-3000:]
    assert len(expected) == 3
    assert losses(metrics) == expected  # bit-identical: same ranks, same parts, same seed


@pytest.mark.timeout(300)
def test_a_node_lacking_its_part_fails_fast_on_every_rank(tmp_path):
    # The process-group timeout is 600 s: a rank left waiting for the one that lacks its part would
    # hang far past the 60 s asked of the job. What it must do is fail together, at once: the clock runs
    # from the launch of both nodes (agents, rendezvous, workers' torch import, the check) to both exits.
    parts = tiny_parts(tmp_path)
    lacking = node_subset(parts, tmp_path / "lacking", (0,))  # this node was never given part-1
    t0 = time.monotonic()
    procs = start_nodes([parts, lacking], tmp_path / "m.jsonl", free_port(), pg_timeout=600)
    results = wait_all(procs, timeout=240)
    elapsed = time.monotonic() - t0
    print(f"both nodes exited {elapsed:.1f} s after launch")
    line = "distgnn train: error: rank 1 on "
    for code, err in results:
        assert code != 0
        mine = [ln for ln in err.splitlines() if ln.startswith(line)]
        assert len(mine) == 1, err[-3000:]  # one line per node (one rank each), naming the missing part
        assert mine[0].endswith(f"{lacking / 'part-1'} is missing (this node needs part-1 of {lacking})")
    assert elapsed < 60


def test_help_and_bad_option():
    out = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "RDZV_ENDPOINT" in out.stdout and "GLOO_SOCKET_IFNAME" in out.stdout
    bad = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2
    assert bad.stderr == "launch/torchrun.sh: unknown option --bogus (put distgnn train options after --)\n"
