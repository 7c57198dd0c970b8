"""Broken model factories for tests/models/test_custom_model_errors.py (imported by path)."""

from __future__ import annotations

from torch import nn

from distgnn.config import ModelConfig
from examples.gin import GINConv
from examples.gin import build as gin


def raises(cfg: ModelConfig, in_dim: int, out_dim: int) -> nn.Module:
    raise ValueError("hidden must be even\nsecond line")


def not_layered(cfg: ModelConfig, in_dim: int, out_dim: int) -> nn.Module:
    return nn.Linear(in_dim, out_dim)


class WrongWidth(GINConv):
    @property
    def exchange_width(self) -> int:
        return self.in_dim + 1  # declares a width it does not exchange


def wrong_width(cfg: ModelConfig, in_dim: int, out_dim: int) -> nn.Module:
    model = gin(cfg, in_dim, out_dim)
    model.convs[0].__class__ = WrongWidth
    return model


def crashes(cfg: ModelConfig, in_dim: int, out_dim: int) -> nn.Module:
    model = gin(cfg, in_dim, out_dim)
    model.convs[0].mlp = nn.Linear(in_dim + 3, out_dim)  # the forward pass fails on a shape mismatch
    return model
