"""SNAP-style text edge lists: one ``src dst`` pair per line, plus optional features and labels files.

Format: two integer node IDs per line, separated by whitespace and/or a comma; ``#`` starts a comment;
blank lines are skipped. The file is parsed in chunks with numpy's C ``loadtxt``; only when a chunk fails
is it rescanned line by line, to name the exact bad line (``edges.txt:17: ...``).

Node count: the row count of the features file if given, else of a ``.npy`` labels file, else the largest
ID seen plus one. Without features every node gets one constant 1.0 feature. Labels: a ``.npy`` array with
one class per node (-1 = unlabelled) or a text file of ``node label`` pairs (unlisted nodes get -1).
Without a split, a seeded random 60/20/20 split of the labelled nodes is drawn.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from distgnn.data.assemble import (
    CsrBuild,
    as_features,
    as_labels,
    assemble_graph,
    check_rows,
    graph_from_csr,
    in_memory_csr,
)
from distgnn.data.csr_on_disk import CsrOnDisk
from distgnn.data.edge_chunks import EdgeStream
from distgnn.data.graph import Graph
from distgnn.data.progress import Stages, bytes_bar
from distgnn.data.splits import random_split
from distgnn.errors import DistGNNError

CHUNK_BYTES = 32 << 20
_INT64 = (-(2**63), 2**63 - 1)
_SEP = re.compile(r"[\s,]+")


def _chunks(path: Path, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) pieces of the file (decompressed, for ``.gz``), each ending at a line
    break."""
    line = 1
    tail = b""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        while True:
            block = f.read(chunk_bytes)
            if not block:
                break
            block = tail + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                tail = block
                continue
            piece, tail = block[:cut], block[cut:]
            yield line, piece
            line += piece.count(b"\n")
    if tail:
        yield line, tail


def _line_pairs(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(offset within the chunk, raw line, tokens) for each non-blank line: the slow, exact scan."""
    for i, raw in enumerate(text.split("\n")):
        body = raw.split("#", 1)[0].strip().strip(",").strip()
        tokens = [t for t in _SEP.split(body) if t] if body else []
        if tokens:
            yield i, raw, tokens


def _to_ints(tokens: list[str]) -> tuple[int, int] | None:
    if len(tokens) != 2:
        return None
    try:
        a, b = int(tokens[0]), int(tokens[1])
    except ValueError:
        return None
    if not (_INT64[0] <= a <= _INT64[1] and _INT64[0] <= b <= _INT64[1]):
        return None
    return a, b


def _fast_parse(text: str) -> np.ndarray | None:
    """[rows, 2] int64 via numpy's C parser, or None when the chunk is not cleanly two ints per line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data" for comment-only chunks
        try:
            arr = np.loadtxt(io.StringIO(text.replace(",", " ")), dtype=np.int64, comments="#", ndmin=2)
        except (ValueError, OverflowError):
            return None
    if arr.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    return arr if arr.shape[1] == 2 else None


def iter_pairs(
    path: Path, expected: str, *, chunk_bytes: int | None = None, progress: bool = False
) -> Iterator[np.ndarray]:
    """The ``a b`` integer pairs of a text file as int64 [rows, 2] arrays, one per ``chunk_bytes`` piece of
    the file (default ``CHUNK_BYTES``), in file order; a bad line raises naming it."""
    size = None if path.suffix == ".gz" else path.stat().st_size  # a .gz's pieces are decompressed bytes
    with bytes_bar(f"reading {path.name}", size, progress) as bar:
        for first_line, piece in _chunks(path, chunk_bytes or CHUNK_BYTES):
            text = piece.decode("utf-8", errors="replace")
            arr = _fast_parse(text)
            if arr is None:
                for offset, raw, tokens in _line_pairs(text):
                    if _to_ints(tokens) is None:
                        shown = raw.strip()
                        raise DistGNNError(
                            f"{path.name}:{first_line + offset}: expected {expected}, got '{shown}'"
                        )
                raise DistGNNError(f"{path.name}: could not parse lines {first_line}+ as {expected}")
            del text
            yield arr
            bar.update(len(piece))


def parse_pairs(path: Path, expected: str, *, progress: bool = False) -> np.ndarray:
    """All ``a b`` integer pairs of a text file as int64 [rows, 2]; a bad line raises naming it."""
    parts = list(iter_pairs(path, expected, progress=progress))
    return np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.int64)


def nth_data_line(path: Path, row: int) -> tuple[int, str]:
    """(line number, text) of the ``row``-th non-blank, non-comment line (0-based): maps a parsed row back
    to its line for value errors. Only used on the error path."""
    seen = 0
    for first_line, piece in _chunks(path, CHUNK_BYTES):
        lines = list(_line_pairs(piece.decode("utf-8", errors="replace")))
        if row < seen + len(lines):
            offset, raw, _ = lines[row - seen]
            return first_line + offset, raw.strip()
        seen += len(lines)
    raise IndexError(f"{path.name} has no data row {row}")


def check_ids(
    path: Path, ids: np.ndarray, num_nodes: int | None, origin: str = "", *, first_row: int = 0
) -> None:
    """Reject negative IDs, and IDs >= ``num_nodes`` (the row count of ``origin`` when it is named); the
    error names the offending line. ``ids`` is [rows, k] of node-ID columns in file order, its first row
    the file's data row ``first_row`` (a chunk of the file)."""
    if ids.size == 0:
        return
    if int(ids.min()) >= 0 and (num_nodes is None or int(ids.max()) < num_nodes):
        return
    bad_rows = (ids < 0).any(axis=1)
    if num_nodes is not None:
        bad_rows |= (ids >= num_nodes).any(axis=1)
    row = int(np.flatnonzero(bad_rows)[0])
    line, _ = nth_data_line(path, first_row + row)
    values = ids[row]
    neg = values[values < 0]
    if neg.size:
        raise DistGNNError(f"{path.name}:{line}: negative node ID {int(neg[0])}")
    value = int(values[values >= num_nodes][0])  # type: ignore[operator]
    if origin:
        raise DistGNNError(
            f"{path.name}:{line}: node ID {value} is out of range: {origin} has {num_nodes} rows"
        )
    raise DistGNNError(f"{path.name}:{line}: node ID {value} is outside the node range [0, {num_nodes})")


def check_labels(path: Path, labels: np.ndarray) -> None:
    """Class IDs in a ``node label`` file must be >= 0, or -1 for unlabelled; the error names the line."""
    below = labels < -1
    if below.any():
        row = int(np.flatnonzero(below)[0])
        line, _ = nth_data_line(path, row)
        raise DistGNNError(
            f"{path.name}:{line}: label {int(labels[row])} is negative (use -1 for unlabelled)"
        )


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise DistGNNError(f"no such file or directory: {path}")
    return path


def load_npy(path: Path) -> np.ndarray:
    """One array from a ``.npy`` file, without pickle."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DistGNNError(f"{path.name}: not a readable .npy array ({err})") from None


EDGES = "two integer node IDs"  # what an edge-list line holds (parse errors say so)


class _TextChunks:
    """Re-iterable ``(src, dst)`` chunks of a text edge list, each ID checked against the node count."""

    def __init__(self, path: Path, num_nodes: int, chunk_bytes: int | None, progress: bool) -> None:
        self.path, self.num_nodes, self.chunk_bytes, self.progress = path, num_nodes, chunk_bytes, progress

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        row = 0
        for pairs in iter_pairs(self.path, EDGES, chunk_bytes=self.chunk_bytes, progress=self.progress):
            check_ids(self.path, pairs, self.num_nodes, first_row=row)
            row += pairs.shape[0]
            yield pairs[:, 0], pairs[:, 1]


def edgelist_node_count(
    path: str | os.PathLike[str], *, chunk_bytes: int | None = None, progress: bool = False
) -> tuple[int, int]:
    """``(num_nodes, num_edges)`` of a text edge list: the largest ID plus one, and its line count."""
    path = Path(path)
    top, rows = -1, 0
    for pairs in iter_pairs(path, EDGES, chunk_bytes=chunk_bytes, progress=progress):
        check_ids(path, pairs, None, first_row=rows)
        if pairs.size:
            top = max(top, int(pairs.max()))
        rows += pairs.shape[0]
    return top + 1, rows


def edgelist_edges(
    path: str | os.PathLike[str],
    *,
    num_nodes: int | None = None,
    chunk_bytes: int | None = None,
    progress: bool = False,
) -> EdgeStream:
    """A text edge list (``.gz`` read as it decompresses) in chunks of ``chunk_bytes`` of text (default
    ``CHUNK_BYTES``), for the out-of-core CSR build: IDs need no remapping, and without ``num_nodes`` the
    file is parsed once more first, to count them. An ID outside ``[0, num_nodes)`` is one line naming the
    file's line. A chunk holds about 5 x ``chunk_bytes`` while parsed plus 16 bytes per edge."""
    path = Path(path)
    if not path.is_file():
        raise DistGNNError(f"no such file: {path}")
    if chunk_bytes is not None and chunk_bytes < 1:
        raise DistGNNError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    num_edges = None
    if num_nodes is None:
        num_nodes, num_edges = edgelist_node_count(path, chunk_bytes=chunk_bytes, progress=progress)
    return EdgeStream(_TextChunks(path, num_nodes, chunk_bytes, progress), num_nodes, num_edges)


def load_edgelist(
    path: str | os.PathLike[str],
    *,
    features: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    split: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    symmetrize: bool = True,
    progress: bool = False,
    csr: CsrBuild = in_memory_csr,
) -> Graph:
    """Load a text edge list (see the module docstring for the format) into a normalised Graph, its CSR
    built by ``csr``."""
    path = _existing(path)
    feat_path = _existing(features) if features is not None else None
    label_path = _existing(labels) if labels is not None else None
    streamed = isinstance(csr, CsrOnDisk)  # out of core: the edges are read in chunks, twice at most
    pairs = None if streamed else parse_pairs(path, EDGES, progress=progress)

    with Stages(f"loading {path.name}", 2, progress) as stage:
        stage("reading features and labels")
        n: int | None = None
        counted = None  # the edge list's own count of its nodes and edges (out of core, no node files)
        origin = ""
        x = y = label_pairs = None
        if feat_path is not None:
            x = as_features(f"{feat_path.name}: features", load_npy(feat_path))
            n, origin = x.shape[0], feat_path.name
        if label_path is not None and label_path.suffix == ".npy":
            y = as_labels(f"{label_path.name}: labels", load_npy(label_path))
            if n is None:
                n, origin = y.shape[0], label_path.name
            check_rows(label_path.name, y, n)
        elif label_path is not None:
            label_pairs = parse_pairs(label_path, "a node ID and an integer label")
            check_ids(label_path, label_pairs[:, :1], n, origin)
            check_labels(label_path, label_pairs[:, 1])
        if pairs is not None:
            check_ids(path, pairs, n, origin)
        if n is None:
            ids = [] if label_pairs is None else [label_pairs[:, 0]]
            tops = [int(a.max()) + 1 for a in ids if a.size]
            if pairs is not None:
                tops += [int(pairs.max()) + 1] if pairs.size else []
            else:
                counted = edgelist_edges(path, progress=progress)
                tops.append(counted.num_nodes)
            n = max(tops) if tops else 0
        if label_pairs is not None:
            y = np.full(n, -1, dtype=np.int64)
            y[label_pairs[:, 0]] = label_pairs[:, 1]
        if y is None:
            y = np.full(n, -1, dtype=np.int64)
        if x is None:
            x = np.ones((n, 1), dtype=np.float32)
        masks = random_split(y, split, seed)

        stage("normalising")
        if streamed:
            same = counted is not None and counted.num_nodes == n
            stream = counted if same else edgelist_edges(path, num_nodes=n, progress=progress)
            indptr, indices = csr.stream(stream.chunks, n, symmetrize, stream.num_edges)  # type: ignore[attr-defined]
            return graph_from_csr(indptr, indices, x=x, y=y, masks=masks, name=path.stem)
        try:
            return assemble_graph(
                pairs[:, 0],
                pairs[:, 1],
                n,
                x=x,
                y=y,
                masks=masks,
                name=path.stem,
                symmetrize=symmetrize,
                csr=csr,
            )
        except DistGNNError as err:
            raise DistGNNError(f"{path.name}: {err}") from None
