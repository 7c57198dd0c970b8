"""`distgnn train`'s options, generated from the config dataclasses (``distgnn/config.py``).

One argument per config field, grouped by section; its flag, help, choices and default come from the
field. :func:`config_from_args` builds the validated config back, and :func:`config_argv` writes a config
as the arguments that reproduce it (what ``--nproc`` hands its workers). Other commands offer some of the
same options (``distgnn profile``: the model and parallel sections' fields its predictions read) with
``add_config_arguments(parser, sections, only=...)`` and build those sections back with
:func:`section_from_args`.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import MISSING, Field, fields
from typing import Any

from distgnn.config import SECTIONS, TrainConfig, section_type
from distgnn.errors import DistGNNError


def _fields(section: str) -> list[tuple[Field, Any]]:
    cls = section_type(section)
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in fields(cls)]


def _flag(f: Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _scalar(hint: Any) -> Any:
    """The scalar type argparse converts to (``str | None`` -> str, ``tuple[int, ...] | None`` -> list)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    return _int_list if typing.get_origin(base) is tuple else base


def add_config_arguments(
    parser: argparse.ArgumentParser,
    sections: Sequence[str] = SECTIONS,
    *,
    only: Mapping[str, Collection[str]] | None = None,
    unchecked: Collection[str] = (),
) -> dict[str, argparse._ArgumentGroup]:
    """Add config fields as options, one argument group per section; returns the groups by section.

    ``sections``: the sections offered (default all); ``only``: per section, the fields offered (default
    every field; the others keep their defaults in :func:`section_from_args`); ``unchecked``: fields
    (``"section.field"``) whose choices the help shows but the caller checks instead of argparse (its own
    one-line error, e.g. a registry that names what is not supported yet).
    """
    groups = {}
    for section in sections:
        group = groups[section] = parser.add_argument_group(f"{section} options")
        wanted = None if only is None or section not in only else set(only[section])
        for f, hint in _fields(section):
            if wanted is not None and f.name not in wanted:
                continue
            meta, dest = f.metadata, f"{section}.{f.name}"
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            if hint is bool:
                action = "store_false" if default else "store_true"
                group.add_argument(_flag(f), dest=dest, action=action, help=meta["help"])
                continue
            shown = (
                ""
                if default is None
                else f" (default {','.join(map(str, default)) if isinstance(default, tuple) else default})"
            )
            choices, metavar = meta.get("choices"), meta.get("metavar")
            if dest in unchecked and choices is not None:
                choices, metavar = None, metavar or "{" + ",".join(map(str, choices)) + "}"
            group.add_argument(
                _flag(f), dest=dest, type=_scalar(hint), default=default, choices=choices, metavar=metavar,
                help=meta["help"] + shown,
            )  # fmt: skip
    return groups


def section_values(args: argparse.Namespace, section: str) -> dict[str, Any]:
    """The fields of ``section`` that ``args`` holds (those :func:`add_config_arguments` offered)."""
    values = vars(args)
    return {f.name: values[key] for f, _ in _fields(section) if (key := f"{section}.{f.name}") in values}


def section_from_args(args: argparse.Namespace, section: str) -> Any:
    """The validated config of one section (``ModelConfig``, ``ParallelConfig``, ...); fields that were
    not offered keep their defaults (raises DistGNNError with one line on a bad value)."""
    return section_type(section)(**section_values(args, section))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The validated TrainConfig (raises DistGNNError with one line on a bad value)."""
    return TrainConfig(**{section: section_from_args(args, section) for section in SECTIONS})


def config_argv(cfg: TrainConfig) -> list[str]:
    """Arguments that parse back to ``cfg`` (only the fields that differ from their defaults)."""
    out: list[str] = []
    for section in SECTIONS:
        current = getattr(cfg, section)
        for f, hint in _fields(section):
            value = getattr(current, f.name)
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            if value == default:
                continue
            if hint is bool:
                out.append(_flag(f))
            elif isinstance(value, tuple):
                out += [_flag(f), ",".join(map(str, value))]
            elif value is None:
                raise DistGNNError(f"cannot pass {f.name}=None on the command line")
            else:
                out += [_flag(f), str(value)]
    return out
