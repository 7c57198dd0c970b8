"""Models run any layer range: cutting a model into consecutive ranges computes exactly the whole model,
with dropout on (masks keyed by node id and site), and each range names the parameters it reads."""

from __future__ import annotations

import pytest
import torch
from dense_propagation import DensePropagation, random_adjacency

from distgnn.models import build_model
from distgnn.models.masks import MaskSeeds, mix

N, IN, HID, OUT = 14, 6, 5, 3
MODELS = [("gcn", 4), ("sage", 3), ("gat", 3), ("deepgcn", 5)]


def _setup(name: str, layers: int):
    torch.manual_seed(0)
    prop = DensePropagation(random_adjacency(N, 0.3, seed=2))
    prop.seeds = MaskSeeds(run_seed=5, step=3)
    model = build_model(name, IN, HID, OUT, layers=layers, dropout=0.5, heads=2).double()
    return model, prop, torch.randn(N, IN, dtype=torch.float64)


@pytest.mark.parametrize("name, layers", MODELS)
@pytest.mark.parametrize("cuts", [(1,), (1, 2), (2,)])
def test_ranges_compose_to_the_whole_model_with_dropout(name, layers, cuts):
    model, prop, x = _setup(name, layers)
    model.train()
    whole = model(x, prop)
    bounds = [0, *cuts, layers]
    h = x
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        h = model.forward_range(h, prop, start, stop, x=x)
    torch.testing.assert_close(h, whole, rtol=0, atol=0)
    prop.seeds = MaskSeeds(run_seed=5, step=4)  # another step draws other masks
    assert not torch.equal(model(x, prop), whole)


@pytest.mark.parametrize("name, layers", MODELS)
def test_range_parameters_cover_the_model_and_get_the_gradients(name, layers):
    model, prop, x = _setup(name, layers)
    ranges = [(0, 1), (1, layers)]
    owned = [{id(p) for p in model.range_parameters(a, b)} for a, b in ranges]
    assert set().union(*owned) == {id(p) for p in model.parameters()}
    replicated = {id(p) for p in model.replicated_parameters()}
    assert owned[0] & owned[1] == replicated
    assert bool(replicated) == (name == "deepgcn")  # GCNII's input projection feeds every layer
    # A range's output depends on (exactly) the parameters it names.
    h = model.forward_range(x, prop, 0, 1, x=x).detach()
    out = model.forward_range(h, prop, 1, layers, x=x)
    out.square().sum().backward()
    with_grad = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == owned[1]


def test_bad_range_and_missing_features():
    model, prop, x = _setup("deepgcn", 4)
    with pytest.raises(ValueError, match=r"layer range \[2, 5\) is not inside \[0, 4\)"):
        model.forward_range(x, prop, 2, 5)
    with pytest.raises(ValueError, match="needs the input features"):
        model.forward_range(torch.zeros(N, HID, dtype=torch.float64), prop, 1, 4)


def test_seed_mixing_is_deterministic_and_separates_inputs():
    assert mix(1, 2, 3) == mix(1, 2, 3)
    seeds = {mix(0, step, site) for step in range(50) for site in range(20)}
    assert len(seeds) == 1000 and all(0 <= s < 2**62 for s in seeds)
