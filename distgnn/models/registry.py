"""Build a model by name: the one place the CLI, the trainer and the profiler turn a name into a module.

A name is a built-in family (``MODELS``), a name given to :func:`register_model`, or the import path of a
factory, ``module:function``: a function ``(ModelConfig, in_dim, out_dim) -> LayeredModel`` (the model
contract: ``docs/models.md``). Whatever does not resolve, or builds no ``LayeredModel``, is one line.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from distgnn.config import ModelConfig
from distgnn.errors import DistGNNError, first_line
from distgnn.models.deepgcn import DeepGCN
from distgnn.models.gat import GAT
from distgnn.models.gcn import GCN
from distgnn.models.layered import LayeredModel
from distgnn.models.sage import GraphSAGE

ModelFactory = Callable[[ModelConfig, int, int], LayeredModel]  # (config, in_dim, out_dim) -> model

MODELS: dict[str, Callable[..., LayeredModel]] = {
    "gcn": GCN,
    "sage": GraphSAGE,
    "gat": GAT,
    "deepgcn": DeepGCN,
}


def build_model(
    name: str,
    in_dim: int,
    hidden: int,
    out_dim: int,
    layers: int = 2,
    dropout: float = 0.5,
    heads: int = 8,
    out_heads: int = 1,
    alpha: float = 0.1,
    lam: float = 0.5,
    attention_dropout: float = 0.0,
) -> LayeredModel:
    """A fresh model. Every model maps ``(x [owned, in_dim], prop) -> logits [owned, out_dim]``.

    ``heads``/``out_heads``/``attention_dropout`` only apply to GAT (``hidden`` is then the width per
    head), ``alpha``/``lam`` to deepgcn (GCNII).
    """
    for label, value in (("in_dim", in_dim), ("hidden", hidden), ("out_dim", out_dim), ("layers", layers)):
        if value < 1:
            raise DistGNNError(f"{label} must be >= 1, got {value}")
    for label, p in (("dropout", dropout), ("attention_dropout", attention_dropout)):
        if not 0.0 <= p < 1.0:
            raise DistGNNError(f"{label} must be in [0, 1), got {p}")
    if name not in MODELS:
        cfg = ModelConfig(
            name=name, layers=layers, hidden=hidden, heads=heads, dropout=dropout, alpha=alpha, lam=lam,
            attention_dropout=attention_dropout,
        )  # fmt: skip
        return build_custom(resolve_factory(name), cfg, in_dim, out_dim)
    if name == "gat":
        if heads < 1 or out_heads < 1:
            raise DistGNNError(f"GAT needs at least one head, got heads={heads}, out_heads={out_heads}")
        return GAT(
            in_dim, hidden, out_dim, layers, dropout, heads=heads, out_heads=out_heads,
            attention_dropout=attention_dropout,
        )  # fmt: skip
    if name == "deepgcn":
        return DeepGCN(in_dim, hidden, out_dim, layers, dropout, alpha=alpha, lam=lam)
    return MODELS[name](in_dim, hidden, out_dim, layers, dropout)


_REGISTERED: dict[str, ModelFactory] = {}


def register_model(name: str, factory: ModelFactory) -> None:
    """Make ``name`` (``--model name``, ``TrainConfig``'s model) build with ``factory``, in this process.

    Every process of a job must register it (a script run under torchrun does: each rank runs it); the
    workers ``distgnn train --nproc`` forks do not run your script, so there give the import path."""
    if name in MODELS or ":" in name:
        raise DistGNNError(f"cannot register {name!r}: built-in model names and import paths are taken")
    if not callable(factory):
        raise DistGNNError(f"the factory registered as {name!r} is not callable")
    _REGISTERED[name] = factory


def resolve_factory(name: str) -> ModelFactory:
    """The factory a non-built-in model name stands for: registered, or imported from ``module:function``
    (the module is looked up on sys.path and in the current directory, as ``python -m`` would)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    module_name, sep, attr = name.partition(":")
    if not sep:
        known = ", ".join([*MODELS, *_REGISTERED])
        raise DistGNNError(
            f"unknown model {name!r}; choose one of {known}, or give an import path module:function"
        )
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or the module itself failed: one line either way
        raise DistGNNError(
            f"--model {name}: cannot import {module_name}: {type(err).__name__}: {err}"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise DistGNNError(f"--model {name}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise DistGNNError(f"--model {name}: {attr} is not a function")
    return obj


def build_custom(factory: ModelFactory, cfg: ModelConfig, in_dim: int, out_dim: int) -> LayeredModel:
    """``factory(cfg, in_dim, out_dim)``, checked: it must return a :class:`LayeredModel`."""
    try:
        model = factory(cfg, in_dim, out_dim)
    except DistGNNError:
        raise
    except Exception as err:  # the factory's own bug or a model that cannot be built: one line
        first = first_line(err)
        raise DistGNNError(f"--model {cfg.name}: the factory raised {type(err).__name__}: {first}") from None
    if not isinstance(model, LayeredModel):
        raise DistGNNError(
            f"--model {cfg.name}: the factory returned {type(model).__name__}, not a "
            "distgnn.models.LayeredModel (docs/models.md)"
        )
    return model
