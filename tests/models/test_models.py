"""Models against hand-written formulas over a dense adjacency (float64, so comparisons are tight)."""

from __future__ import annotations

import math

import pytest
import torch
from dense_propagation import DensePropagation, random_adjacency

from distgnn.errors import DistGNNError
from distgnn.models import GAT, GCN, DeepGCN, GraphSAGE, build_model
from distgnn.models.gcn import GCNConv
from distgnn.models.inputs import SparseRows
from distgnn.models.sage import SAGEConv

N = 12


@pytest.fixture
def graph():
    torch.manual_seed(0)
    adj = random_adjacency(N, 0.3, seed=1)
    return adj, DensePropagation(adj), torch.randn(N, 7, dtype=torch.float64)


def gcn_matrix(adj):
    a_hat = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
    d = torch.diag(a_hat.sum(1) ** -0.5)
    return d @ a_hat @ d


@pytest.mark.parametrize("in_dim,out_dim", [(7, 3), (7, 9)])
def test_gcn_layer_matches_formula_either_order(graph, in_dim, out_dim):
    adj, prop, x = graph
    conv = GCNConv(in_dim, out_dim).double()
    with torch.no_grad():
        conv.bias.normal_()
    expected = gcn_matrix(adj) @ x @ conv.weight + conv.bias
    torch.testing.assert_close(conv(x, prop, key=0), expected)
    assert conv.transform_first == (out_dim < in_dim)
    assert prop.calls == [("aggregate", 0, min(in_dim, out_dim))]


def test_gcn_stack_keys_and_widths(graph):
    adj, prop, x = graph
    model = GCN(7, 16, 3, layers=3, dropout=0.0).double()
    out = model(x, prop)
    c = [conv for conv in model.convs]
    p = gcn_matrix(adj)
    h = torch.relu(p @ x @ c[0].weight + c[0].bias)
    h = torch.relu(p @ h @ c[1].weight + c[1].bias)
    torch.testing.assert_close(out, p @ h @ c[2].weight + c[2].bias)
    # widths: 7 -> 16 grows (aggregate first, 7), 16 -> 16 (aggregate, 16), 16 -> 3 shrinks (3)
    assert [(k, w) for _, k, w in prop.calls] == [(0, 7), (1, 16), (2, 3)]
    assert model.exchange_widths() == [7, 16, 3]


@pytest.mark.parametrize("in_dim,out_dim", [(7, 3), (7, 9)])
def test_sage_layer_matches_formula(graph, in_dim, out_dim):
    adj, prop, x = graph
    conv = SAGEConv(in_dim, out_dim).double()
    deg = adj.sum(1, keepdim=True).clamp(min=1)
    neigh = (adj @ x) / deg
    expected = x @ conv.lin_self.weight.T + conv.lin_self.bias + neigh @ conv.lin_neigh.weight.T
    torch.testing.assert_close(conv(x, prop, key=4), expected)
    assert prop.calls == [("aggregate", 4, min(in_dim, out_dim))]


def test_sage_isolated_node_gets_only_self_term():
    adj = torch.zeros(3, 3, dtype=torch.float64)
    adj[0, 1] = adj[1, 0] = 1.0
    conv = SAGEConv(4, 2).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    out = conv(x, DensePropagation(adj), key=0)
    torch.testing.assert_close(out[2], conv.lin_self(x[2]))


def test_gat_matches_per_edge_softmax(graph):
    adj, prop, x = graph
    model = GAT(7, 4, 3, layers=2, dropout=0.0, heads=2, out_heads=3).double()
    out = model(x, prop)
    mask = adj + torch.eye(N, dtype=adj.dtype)

    def layer(conv, h, concat):
        z = conv.lin(h).view(N, conv.heads, conv.out_dim)
        heads = []
        for k in range(conv.heads):
            s = z[:, k] @ conv.att_src[k]
            d = z[:, k] @ conv.att_dst[k]
            rows = []
            for i in range(N):
                js = torch.nonzero(mask[i]).flatten()
                e = torch.nn.functional.leaky_relu(s[js] + d[i], 0.2)
                rows.append((torch.softmax(e, 0)[:, None] * z[js, k]).sum(0))
            heads.append(torch.stack(rows))
        hs = torch.stack(heads, 1)
        return (hs.reshape(N, -1) if concat else hs.mean(1)) + conv.bias

    h = torch.nn.functional.elu(layer(model.convs[0], x, True))
    torch.testing.assert_close(out, layer(model.convs[1], h, False))
    assert [(op, k, w) for op, k, w in prop.calls] == [("attend", 0, 2 * 4 + 2), ("attend", 1, 3 * 3 + 3)]
    assert model.exchange_widths() == [10, 12]
    assert out.shape == (N, 3)


def test_deepgcn_matches_gcnii_recurrence(graph):
    adj, prop, x = graph
    model = DeepGCN(7, 5, 3, layers=8, dropout=0.0, alpha=0.1, lam=0.5).double()
    out = model(x, prop)
    p = gcn_matrix(adj)
    h0 = torch.relu(model.lin_in(x))
    h = h0
    for layer, conv in enumerate(model.convs, start=1):
        beta = math.log(0.5 / layer + 1)
        assert conv.beta == pytest.approx(beta)
        s = 0.9 * (p @ h) + 0.1 * h0
        h = torch.relu((1 - beta) * s + beta * s @ conv.weight)
    torch.testing.assert_close(out, model.lin_out(h))
    assert [k for _, k, _ in prop.calls] == list(range(8))


def test_deepgcn_64_layers_stays_finite_and_trains():
    torch.manual_seed(0)
    adj = random_adjacency(30, 0.2, seed=3)
    prop = DensePropagation(adj)
    x = torch.randn(30, 6)
    y = x[:, :3].argmax(1)  # learnable from the features
    model = build_model("deepgcn", 6, 8, 3, layers=64, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, prop), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0]


def test_dropout_is_identity_in_eval_and_active_in_train(graph):
    _, prop, x = graph
    model = build_model("gcn", 7, 16, 3, dropout=0.5).double()
    plain = build_model("gcn", 7, 16, 3, dropout=0.0).double()
    plain.load_state_dict(model.state_dict())
    model.eval()
    plain.train()  # p = 0: the dropout-free forward
    torch.testing.assert_close(model(x, prop), plain(x, prop), rtol=0, atol=0)
    model.train()
    torch.manual_seed(0)
    a = model(x, prop)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x, prop))


def test_same_seed_same_parameters():
    def params(seed):
        torch.manual_seed(seed)
        return torch.cat([p.flatten() for p in build_model("gat", 5, 4, 2, heads=2).parameters()])

    assert torch.equal(params(3), params(3))
    assert not torch.equal(params(3), params(4))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            dict(name="mlp"),
            "unknown model 'mlp'; choose one of gcn, sage, gat, deepgcn, or give an import path "
            "module:function",
        ),
        (dict(layers=0), "layers must be >= 1, got 0"),
        (dict(hidden=0), "hidden must be >= 1, got 0"),
        (dict(dropout=1.0), "dropout must be in [0, 1), got 1.0"),
        (dict(name="gat", heads=0), "GAT needs at least one head, got heads=0, out_heads=1"),
    ],
)
def test_build_model_rejects_bad_config(kwargs, message):
    args = dict(name="gcn", in_dim=4, hidden=8, out_dim=2, layers=2, dropout=0.5) | kwargs
    with pytest.raises(DistGNNError) as err:
        build_model(**args)
    assert str(err.value) == message


def test_registry_builds_every_family():
    for name, cls in [("gcn", GCN), ("sage", GraphSAGE), ("gat", GAT), ("deepgcn", DeepGCN)]:
        assert isinstance(build_model(name, 4, 8, 2, layers=2), cls)


@pytest.mark.parametrize("name", ["gcn", "sage", "gat", "deepgcn"])
@pytest.mark.parametrize("hidden", [3, 16])  # 3: transform first, 16: aggregate (dense) first
def test_sparse_csr_input_equals_dense(graph, name, hidden):
    _, prop, _ = graph
    torch.manual_seed(5)
    x = torch.rand(N, 7, dtype=torch.float64) * (torch.rand(N, 7) < 0.3)
    model = build_model(name, 7, hidden, 3, layers=2, dropout=0.0, heads=2).double()
    sparse = SparseRows.from_dense(x)
    torch.testing.assert_close(model(sparse, prop), model(x, prop))
    # gradients too (the weight gradient goes through the stored transpose)
    model(sparse, prop).square().sum().backward()
    g_sparse = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x, prop).square().sum().backward()
    for a, b in zip(g_sparse, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(a, b)


def test_sparse_input_dropout_keeps_zeros_and_scales_kept_values():
    from distgnn.models.inputs import dropout

    torch.manual_seed(0)
    x = torch.rand(50, 40) * (torch.rand(50, 40) < 0.2)
    out = dropout(SparseRows.from_dense(x), 0.5, True).to_dense()
    assert torch.all(out[x == 0] == 0)
    kept = out[x != 0] != 0
    torch.testing.assert_close(out[x != 0][kept], 2 * x[x != 0][kept])
    assert 0.35 < kept.float().mean() < 0.65
    assert dropout(SparseRows.from_dense(x), 0.5, False).to_dense().equal(x)


def test_cli_model_names_match_the_registry():
    """The torch-free CLI list of models and the registry that builds them must agree."""
    from distgnn.config import MODELS as CLI_MODELS
    from distgnn.models.registry import MODELS

    assert tuple(MODELS) == CLI_MODELS


def test_partition_cli_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from distgnn.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
