"""Checkpoints you can trust: complete-or-absent sets, verified and agreed resumes, failed saves that
fail only themselves, bounded disk use, RNG restore across machines with other CUDA device counts."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from pathlib import Path

import pytest
import torch

from distgnn.checkpoint import files as ckpt
from distgnn.checkpoint.sets import resume_set, save_set
from distgnn.comm.layout import ProcessLayout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dist"))
from helpers import run_ranks  # noqa: E402

ONE = ProcessLayout.single("cpu")


def state(epoch: int, rank: int = 0) -> dict:
    return {"epoch": epoch, "rank": rank, "w": torch.full((64,), float(epoch * 10 + rank))}


def save(root: Path, *epochs: int, keep: int = 2, run: str | None = "r") -> list[bool]:
    return [save_set(ONE, str(root), e, state(e), keep=keep, run=run) for e in epochs]


def listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


@pytest.mark.parametrize(("keep", "kept"), [(1, [8]), (2, [6, 8]), (0, [2, 4, 6, 8])])
def test_keep_checkpoints_bounds_disk_use(tmp_path, keep, kept):
    assert save(tmp_path, 2, 4, 6, 8, keep=keep) == [True] * 4
    assert listing(tmp_path) == [f"epoch-{e:06d}" for e in kept]
    for e in kept:
        assert listing(ckpt.epoch_dir(tmp_path, e)) == ["manifest.json", "rank-00000.pt"]
        assert ckpt.verify_rank_file(tmp_path, e, 0, ckpt.read_manifest(tmp_path, e)) is None
    assert ckpt.latest(tmp_path) == (8, 1)


def test_a_full_disk_fails_that_save_only(tmp_path, monkeypatch, capsys):
    assert save(tmp_path, 2) == [True]

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(ckpt._HashingWriter, "write", full)
        assert save(tmp_path, 4) == [False]
    err = capsys.readouterr().err
    assert err == (
        f"distgnn: warning: checkpoint of epoch 4 not saved: rank 0 could not write "
        f"{ckpt.rank_file(tmp_path, 4, 0)} (No space left on device); earlier checkpoints are kept\n"
    )
    assert listing(tmp_path) == ["epoch-000002"]  # no partial set, no temporary file
    assert listing(ckpt.epoch_dir(tmp_path, 2)) == ["manifest.json", "rank-00000.pt"]
    epoch, loaded = resume_set(ONE, str(tmp_path))
    assert epoch == 2 and torch.equal(loaded["w"], state(2)["w"])
    assert save(tmp_path, 6) == [True]  # the disk has room again: the run's next save works
    assert ckpt.latest(tmp_path) == (6, 1)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_truncate, "is truncated or overwritten (100 bytes, the manifest says"),
        (_flip_a_byte, "is corrupt (its sha256 does not match the manifest)"),
        (Path.unlink, "is missing"),
    ],
)
def test_a_damaged_latest_set_falls_back_with_one_warning(tmp_path, capsys, damage, why):
    save(tmp_path, 2, 4)
    bad = ckpt.rank_file(tmp_path, 4, 0)
    damage(bad)
    epoch, loaded = resume_set(ONE, str(tmp_path))
    assert epoch == 2 and loaded["epoch"] == 2 and torch.equal(loaded["w"], state(2)["w"])
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"distgnn: warning: checkpoint file {bad} {why}")
    assert lines[0].endswith("; falling back to an older checkpoint")


def test_an_unreadable_manifest_is_skipped_with_a_warning_naming_it(tmp_path, capsys):
    save(tmp_path, 2, 4)
    manifest = ckpt.epoch_dir(tmp_path, 4) / ckpt.MANIFEST
    manifest.write_text('{"format": "distgnn-checkpoint", "vers')
    assert resume_set(ONE, str(tmp_path))[0] == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"distgnn: warning: checkpoint manifest {manifest} is unreadable: ")
    assert line.endswith("; trying an older checkpoint")


def test_a_set_without_manifest_is_never_resumed(tmp_path):
    save(tmp_path, 2)
    ckpt.save_rank_state(tmp_path, 4, 0, state(4))  # a save that died before its manifest
    assert ckpt.latest(tmp_path) == (2, 1)
    assert resume_set(ONE, str(tmp_path))[0] == 2
    assert resume_set(ONE, str(tmp_path / "empty")) is None


def test_a_restart_resumes_only_its_own_runs_sets(tmp_path):
    save(tmp_path, 2, 4, run="old")
    save(tmp_path, 2, run="new")  # the new run rewrote epoch 2 and pruned the old run's epoch 4
    assert resume_set(ONE, str(tmp_path), run="new")[0] == 2
    assert resume_set(ONE, str(tmp_path), run="other") is None
    first = ckpt.run_token(tmp_path, new=True)
    assert ckpt.run_token(tmp_path, new=False) == first != ckpt.run_token(tmp_path, new=True)


def test_sets_of_an_abandoned_timeline_are_dropped(tmp_path):
    # resumed from epoch 2 (say epoch 4 was corrupt) and saved epoch 3: epoch 4 is no longer "latest"
    save(tmp_path, 2, 4, keep=0)
    save(tmp_path, 3, keep=0)
    assert listing(tmp_path) == ["epoch-000002", "epoch-000003"]


def test_rng_restore_on_a_machine_with_another_cuda_device_count(monkeypatch):
    cpu = torch.get_rng_state()
    saved = {"cpu": cpu, "cuda": [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]}
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.append((device, int(s[0]))))
    ckpt.set_rng_state(saved)  # saved on 4 GPUs, restored on 2: the two devices both have
    assert restored == [(0, 0), (1, 1)]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    restored.clear()
    ckpt.set_rng_state(saved)  # saved on 4, restored on 8: the other 4 keep their own state
    assert restored == [(0, 0), (1, 1), (2, 2), (3, 3)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored.clear()
    torch.manual_seed(123)
    ckpt.set_rng_state(saved)  # on a CPU-only machine: the CPU stream only
    assert restored == [] and torch.equal(torch.get_rng_state(), cpu)


def _two_ranks(layout: ProcessLayout, root: str) -> dict:
    """Rank 1's disk fills at epoch 4; later rank 1's file of epoch 6 is damaged: both ranks agree."""
    err = io.StringIO()
    out = {}
    with contextlib.redirect_stderr(err):
        out["saved"] = [save_set(layout, root, 2, state(2, layout.rank), keep=2, run="r")]
        real = ckpt.save_rank_state

        def full(root, epoch, rank, st):
            if rank == 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(root, epoch, rank, st)

        ckpt.save_rank_state = full
        out["saved"].append(save_set(layout, root, 4, state(4, layout.rank), keep=2, run="r"))
        ckpt.save_rank_state = real
        layout.barrier()
        out["after_failure"] = listing(Path(root))
        out["saved"].append(save_set(layout, root, 6, state(6, layout.rank), keep=2, run="r"))
        layout.barrier()
        if layout.rank == 1:
            _flip_a_byte(ckpt.rank_file(root, 6, 1))
        layout.barrier()
        epoch, st = resume_set(layout, root)
        out["resumed"] = (epoch, st["rank"], float(st["w"][0]))
    out["err"] = err.getvalue()
    return out


@pytest.mark.timeout(120)
def test_two_ranks_save_and_resume_together(tmp_path):
    root = tmp_path / "ckpt"
    r0, r1 = run_ranks(_two_ranks, 2, str(root), timeout=100)
    assert r0["saved"] == r1["saved"] == [True, False, True]
    assert r0["after_failure"] == ["epoch-000002"]  # rank 0's file of epoch 4 went with the failed set
    assert r0["resumed"] == (2, 0, 20.0) and r1["resumed"] == (2, 1, 21.0)  # not rank 0 at 6, rank 1 at 2
    assert r0["err"] == (
        f"distgnn: warning: checkpoint of epoch 4 not saved: rank 1 could not write "
        f"{ckpt.rank_file(root, 4, 1)} (No space left on device); earlier checkpoints are kept\n"
    )
    assert r1["err"] == (
        f"distgnn: warning: checkpoint file {ckpt.rank_file(root, 6, 1)} is corrupt (its sha256 does not "
        "match the manifest); falling back to an older checkpoint\n"
    )
