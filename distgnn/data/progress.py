"""Progress bars for long loading steps: tqdm on stderr, drawn only once a load has run for a second."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Stages:
    """A bar over the named steps of one load. ``stage(name)`` starts the next step."""

    def __init__(self, desc: str, steps: int, enabled: bool) -> None:
        self.bar = tqdm(
            total=steps, desc=desc, unit="step", file=sys.stderr, disable=not enabled, delay=1.0, leave=False
        )
        self._started = False

    def __call__(self, name: str) -> None:
        self.bar.set_postfix_str(name, refresh=False)
        if self._started:
            self.bar.update(1)
        self._started = True

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def bytes_bar(desc: str, total: int, enabled: bool) -> tqdm:
    """A bar over the bytes of a file being parsed."""
    return count_bar(desc, total, "B", enabled)


def count_bar(desc: str, total: int | None, unit: str, enabled: bool) -> tqdm:
    """A bar over things counted as they stream by (edges of a pass); ``total`` None when unknown."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        disable=not enabled,
        delay=1.0,
        leave=False,
    )
