"""launch/torchrun.sh: two torchrun agents on 127.0.0.1 (c10d rendezvous) train like --nproc 2."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest
from launch_helpers import REPO, TRAIN_ARGS, launcher_env, losses, nproc_reference, tiny_parts

SCRIPT = REPO / "launch" / "torchrun.sh"


def start_nodes(part_dirs: list, metrics, endpoint: str, pg_timeout: int = 120) -> list[subprocess.Popen]:
    """One launch/torchrun.sh per "node" (both on this machine), 1 process each, 2 nodes, rendezvous at
    ``endpoint`` (the ``rdzv_endpoint`` fixture: a store the test holds)."""
    env = launcher_env(NNODES="2", RDZV_ENDPOINT=endpoint, RDZV_ID="test")
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
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for d in part_dirs
    ]


@dataclass
class Ended:
    """A finished node: exit code, stderr lines with the time.monotonic() each arrived, when it exited."""

    code: int = 0
    lines: list[tuple[float, str]] = field(default_factory=list)
    at: float = 0.0

    @property
    def err(self) -> str:
        return "\n".join(line for _, line in self.lines)


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[Ended]:
    """Wait for every node, reading their stderr as it comes; kill them all past ``timeout``."""

    def follow(proc: subprocess.Popen, out: Ended) -> None:
        for line in proc.stderr:
            out.lines.append((time.monotonic(), line.rstrip("\n")))
        out.code, out.at = proc.wait(), time.monotonic()

    ended = [Ended() for _ in procs]
    threads = [threading.Thread(target=follow, args=pe, daemon=True) for pe in zip(procs, ended, strict=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        for p in procs:
            p.kill()
        raise TimeoutError(f"the nodes did not all exit within {timeout} s")
    return ended


def node_subset(parts, node, ranks: tuple[int, ...]):
    """What ``distgnn partition``'s output looks like copied to a node: meta.json and its own parts."""
    node.mkdir()
    shutil.copy(parts / "meta.json", node)
    for rank in ranks:
        shutil.copytree(parts / f"part-{rank}", node / f"part-{rank}")
    return node


@pytest.mark.slow  # two torchrun agents (and the shared --nproc 2 run): scheduled first (tests/conftest.py)
@pytest.mark.timeout(400)
def test_two_torchrun_nodes_match_nproc_2(tmp_path, shared_tmp, rdzv_endpoint):
    # Node 0 reads the shared directory; node 1 holds only meta.json and part-1 (both ways of giving
    # nodes their data, in one job).
    parts, expected = nproc_reference(shared_tmp)  # the --nproc 2 run (shared with test_ray.py)
    metrics = tmp_path / "nnodes2.jsonl"
    nodes = [parts, node_subset(parts, tmp_path / "node1", (1,))]
    for node in wait_all(start_nodes(nodes, metrics, rdzv_endpoint), timeout=300):
        assert node.code == 0, node.err[-3000:]
    assert len(expected) == 3
    assert losses(metrics) == expected  # bit-identical: same ranks, same parts, same seed


@pytest.mark.timeout(300)
def test_a_node_lacking_its_part_fails_fast_on_every_rank(tmp_path, rdzv_endpoint):
    # The process-group timeout is 600 s: a rank left waiting for the one that lacks its part would hang
    # until then. What every rank must do is fail together, at once: print the agreed error, then exit.
    # The clock runs from the first error line (the fault known to the ranks), not from the launch (agents,
    # rendezvous and torch imports take what a loaded machine gives them).
    parts = tiny_parts(tmp_path)
    lacking = node_subset(parts, tmp_path / "lacking", (0,))  # this node was never given part-1
    procs = start_nodes([parts, lacking], tmp_path / "m.jsonl", rdzv_endpoint, pg_timeout=600)
    nodes = wait_all(procs, timeout=240)  # a rank waiting out the 600 s timeout fails here
    line = "distgnn train: error: rank 1 on "
    for node in nodes:
        assert node.code != 0
        mine = [ln for _, ln in node.lines if ln.startswith(line)]
        assert len(mine) == 1, node.err[-3000:]  # one line per node (one rank each), naming the missing part
        assert mine[0].endswith(f"{lacking / 'part-1'} is missing (this node needs part-1 of {lacking})")
    first = min(t for node in nodes for t, ln in node.lines if ln.startswith(line))
    after = max(node.at for node in nodes) - first
    print(f"both nodes exited {after:.1f} s after the first error line")
    assert after < 60  # teardown only (seconds); a tenth of the process-group timeout


def test_help_and_bad_option():
    out = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "RDZV_ENDPOINT" in out.stdout and "GLOO_SOCKET_IFNAME" in out.stdout
    bad = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2
    assert bad.stderr == "launch/torchrun.sh: unknown option --bogus (put distgnn train options after --)\n"
