"""`distgnn train`'s options, generated from the config dataclasses (``distgnn/config.py``).

One argument per config field, grouped by section; its flag, help, choices and default come from the
field. :func:`config_from_args` builds the validated config back, and :func:`config_argv` writes a config
as the arguments that reproduce it (what ``--nproc`` hands its workers).
"""

from __future__ import annotations

import argparse
import typing
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


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every config field as an option, one argument group per section."""
    for section in SECTIONS:
        group = parser.add_argument_group(f"{section} options")
        for f, hint in _fields(section):
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
            group.add_argument(
                _flag(f), dest=dest, type=_scalar(hint), default=default, choices=meta.get("choices"),
                metavar=meta.get("metavar"), help=meta["help"] + shown,
            )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The validated TrainConfig (raises DistGNNError with one line on a bad value)."""
    values = vars(args)
    sections = {}
    for section in SECTIONS:
        kwargs = {f.name: values[f"{section}.{f.name}"] for f, _ in _fields(section)}
        sections[section] = section_type(section)(**kwargs)
    return TrainConfig(**sections)


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
