"""Outputs that several test files compare against and that cost a multi-process run to make: made once per
test run, by whichever pytest-xdist worker asks first (the others wait for it, then read them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def made_once(shared: Path, name: str, make: Callable[[Path], None]) -> Path:
    """``shared / name`` once ``make`` has filled it, run at most once per test run under a file lock.

    ``shared`` is a directory every worker sees (the ``shared_tmp`` fixture). An attempt that raised
    leaves no ``done`` mark, so the next asker runs ``make`` again (it must clear what it rewrites).
    """
    root = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (root / "done").exists():
            root.mkdir(parents=True, exist_ok=True)
            make(root)
            (root / "done").touch()
    return root
