"""Strict JSON (RFC 8259) for every file and ``--json`` output distgnn writes.

Python's ``json`` writes ``NaN``/``Infinity`` by default, which ``JSON.parse`` and most non-Python readers
reject. Here a non-finite float (e.g. the accuracy of an epoch that was not evaluated) becomes ``null``,
and ``allow_nan=False`` makes any value that slipped through an error instead of invalid output.
Writes to files are atomic (temp file + rename), so a failure never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (also inside dicts, lists, tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``value`` (NaN/Infinity written as null)."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)


def loads(text: str) -> Any:
    """Parse strict JSON: ``NaN``, ``Infinity`` and ``-Infinity`` are refused."""
    return json.loads(text, parse_constant=_refuse)


def write_atomic(path: str | os.PathLike, value: Any, **kwargs: Any) -> None:
    """Write ``value`` as strict JSON to ``path`` via a temporary file renamed into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(value, **kwargs) + "\n"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _refuse(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


def read_document(path: str | os.PathLike, fmt: str, version: int) -> dict:
    """A strict-JSON file whose ``format`` field is ``fmt`` at ``version``; one-line errors otherwise."""
    from distgnn.errors import DistGNNError

    p = Path(path)
    if not p.is_file():
        raise DistGNNError(f"{p} does not exist (expected a {fmt} file)")
    try:
        doc = loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DistGNNError(f"{p} is not strict JSON: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise DistGNNError(f"{p} is not a {fmt} file (its format field is not {fmt!r})")
    if doc.get("version") != version:
        raise DistGNNError(
            f"{p}: {fmt} version {doc.get('version')} is not supported (this distgnn reads {version})"
        )
    return doc
