"""Context modules: shapes at odd sizes, batch-1 training, brute-force references for every attention
block, identity at initialisation, DNL whitening, CRM options, option errors, FLOP countability."""

from __future__ import annotations

import math
import re

import pytest
import torch

from srcr.errors import UserError
from srcr.models.context.attention import (
    ChannelAttention,
    CrissCrossAttention,
    DisentangledNonLocal,
    PositionAttention,
)
from srcr.models.context.ccam_dran import CompactChannelAttention
from srcr.models.decoder import build_context
from srcr.models.registry import CONTEXT_MODULES

NAMES = ["none", "ppm", "dappm", "dam", "ccam", "ccam_dran", "crm"]
IN_CHANNELS = [16, 32, 64, 128]
OUT = 32


def stage_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """Sizes at strides 4, 8, 16, 32 of an h x w image through a chain of stride-2 convs (ceil)."""
    sizes = []
    for _ in range(5):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        sizes.append((h, w))
    return sizes[1:]


def make_feats(
    batch: int = 2, image=(97, 181), channels=IN_CHANNELS, seed: int = 0, dtype=torch.float32
):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, c, h, w, generator=g, dtype=dtype)
        for c, (h, w) in zip(channels, stage_sizes(*image))
    ]


def build(name: str, **options):
    torch.manual_seed(0)
    return CONTEXT_MODULES[name](IN_CHANNELS, OUT, **options)


def test_registry_names_and_stage_sizes():
    assert sorted(CONTEXT_MODULES) == sorted(NAMES)
    assert stage_sizes(97, 181) == [(25, 46), (13, 23), (7, 12), (4, 6)]


# ---------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_at_odd_sizes(name):
    m = build(name)
    feats = make_feats(batch=2)
    for train in (True, False):
        m.train(train)
        with torch.no_grad():
            out = m(feats)
        assert out.shape == (2, OUT, 4, 6)
        assert torch.isfinite(out).all()
    # channels_last inputs (CUDA training uses them) must not break any reshape
    with torch.no_grad():
        out_cl = m([f.contiguous(memory_format=torch.channels_last) for f in feats])
    torch.testing.assert_close(out_cl, out)
    # backbone features are never modified in place
    assert all(torch.equal(a, b) for a, b in zip(feats, make_feats(batch=2)))


@pytest.mark.parametrize("name", NAMES)
def test_batch_one_trains(name):
    m = build(name).train()
    feats = make_feats(batch=1, seed=1)
    out = m(feats)
    assert out.shape == (1, OUT, 4, 6)
    out.square().mean().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["ppm", "dappm"])
def test_batchnorm_pooled_branches_fail_at_batch_one(name):
    # why pool_norm defaults to 'gn': BN on a 1x1 pooled map has one value per channel at batch 1
    m = build(name, pool_norm="bn").train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        m(make_feats(batch=1))
    assert build(name, pool_norm="bn").train()(make_feats(batch=2)).shape == (2, OUT, 4, 6)


def test_ppm_bins_and_branch_width():
    m = build("ppm", bins=[1, 3], branch_channels=8)
    assert len(m.branches) == 2
    assert m.bottleneck.in_channels == IN_CHANNELS[-1] + 2 * 8
    assert m.eval()(make_feats()).shape == (2, OUT, 4, 6)


def test_dappm_structure():
    m = build("dappm", branch_channels=8)
    # identity, three strided average pools and the global pool, each followed by norm-ReLU-conv
    pools = [s[0] for s in m.scales]
    assert [(p.kernel_size, p.stride, p.padding) for p in pools[:3]] == [
        (5, 2, 2),
        (9, 4, 4),
        (17, 8, 8),
    ]
    assert isinstance(pools[3], torch.nn.AdaptiveAvgPool2d)
    assert isinstance(m.scales[3][1], torch.nn.GroupNorm)
    assert m.compression[2].in_channels == 5 * 8 and m.compression[2].out_channels == OUT
    assert m.eval()(make_feats()).shape == (2, OUT, 4, 6)


def test_autocast_bf16_runs_with_fp32_attention():
    feats = make_feats(batch=2)
    for name in NAMES:
        m = build(name).eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(feats)
        assert out.shape == (2, OUT, 4, 6) and torch.isfinite(out.float()).all(), name
    cca = CrissCrossAttention(16).eval()
    dnl = DisentangledNonLocal(16).eval()
    x = torch.randn(1, 16, 5, 7)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a_col, a_row = cca.attention(x)
        pair = dnl.pairwise_attention(dnl.query(x), dnl.key(x))
    assert a_col.dtype == a_row.dtype == pair.dtype == torch.float32


# ---------------------------------------------------------------------- attention: references


def _double(m, gamma=None):
    m = m.double().eval()
    if gamma is not None:
        with torch.no_grad():
            m.gamma.fill_(gamma)
    return m


def test_criss_cross_equals_dense_masked_attention():
    torch.manual_seed(0)
    for h, w in [(5, 7), (4, 4), (1, 6), (6, 1)]:
        m = _double(CrissCrossAttention(16), gamma=0.7)
        x = torch.randn(2, 16, h, w, dtype=torch.float64)
        with torch.no_grad():
            q, k, v = m.query(x).flatten(2), m.key(x).flatten(2), m.value(x).flatten(2)
            energy = q.transpose(1, 2) @ k  # B, N, N: every pair
            rows = torch.arange(h).repeat_interleave(w)
            cols = torch.arange(w).repeat(h)
            same_line = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])
            att = energy.masked_fill(~same_line, float("-inf")).softmax(-1)  # self counted once
            ref = x + 0.7 * (v @ att.transpose(1, 2)).reshape(x.shape)
            torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
            a_col, a_row = m.attention(x)
            torch.testing.assert_close(
                a_col.sum(-1) + a_row.sum(-1), torch.ones(2, h, w, dtype=x.dtype)
            )
            assert (a_col.diagonal(dim1=1, dim2=3) == 0).all()  # self excluded from the column


def _dense_criss_cross(m, x):
    """Criss-cross attention written as dense attention masked to each pixel's row and column."""
    h, w = x.shape[-2:]
    q, k, v = m.query(x).flatten(2), m.key(x).flatten(2), m.value(x).flatten(2)
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    same_line = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])
    att = (q.transpose(1, 2) @ k).masked_fill(~same_line, float("-inf")).softmax(-1)
    return x + m.gamma * (v @ att.transpose(1, 2)).reshape(x.shape)


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_ccam_matches_hand_written_rcca(act):
    # CCNet's RCCAModule with InPlaceABNSync (BN + leaky ReLU 0.01) after conva, convb and the
    # bottleneck conv; act='relu' is the project default. BN in eval with non-trivial statistics.
    torch.manual_seed(1)
    m = build("ccam", act=act).double().eval()
    with torch.no_grad():
        m.cca.gamma.fill_(0.6)
        for unit in (m.conv_in, m.conv_out, m.bottleneck):
            unit[1].running_mean.normal_()
            unit[1].running_var.uniform_(0.5, 2.0)
            unit[1].bias.normal_()
    feats = make_feats(image=(97, 181), dtype=torch.float64)
    slope = 0.01 if act == "leaky_relu" else 0.0

    def unit_ref(unit, x):
        conv, bn = unit[0], unit[1]
        z = torch.nn.functional.conv2d(x, conv.weight, padding=1)
        z = torch.nn.functional.batch_norm(
            z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
        )
        return torch.where(z >= 0, z, slope * z)

    x = feats[-1]
    with torch.no_grad():
        y = unit_ref(m.conv_in, x)
        assert (y < 0).any() == (act == "leaky_relu")
        for _ in range(2):  # recurrence 2, shared weights
            y = _dense_criss_cross(m.cca, y)
        ref = unit_ref(m.bottleneck, torch.cat([x, unit_ref(m.conv_out, y)], 1))
        torch.testing.assert_close(m(feats), ref, rtol=1e-9, atol=1e-9)


def test_channel_attention_matches_formula():
    m = _double(ChannelAttention(), gamma=0.3)
    x = 0.1 * torch.randn(2, 6, 3, 5, dtype=torch.float64)
    X = x.flatten(2)
    E = torch.einsum("bcn,bdn->bcd", X, X)
    A = torch.exp(-E) / torch.exp(-E).sum(-1, keepdim=True)  # softmax(rowmax(E) - E)
    ref = x + 0.3 * torch.einsum("bcd,bdn->bcn", A, X).reshape(x.shape)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)
        # large energies: the rowmax shift keeps it finite where exp(-E) alone would underflow to 0/0
        big = 30 * torch.randn(1, 6, 4, 4, dtype=torch.float64)
        assert torch.isfinite(m(big)).all()


def test_compact_channel_attention_matches_formula():
    torch.manual_seed(0)
    m = _double(CompactChannelAttention(32, compact=8), gamma=0.5)
    x = 0.1 * torch.randn(2, 32, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        X, Y = x.flatten(2), m.encoder(x).flatten(2)
        assert Y.shape[1] == 4
        E = torch.einsum("bcn,bkn->bck", X, Y)
        A = torch.exp(-E) / torch.exp(-E).sum(-1, keepdim=True)
        ref = x + 0.5 * torch.einsum("bck,bkn->bcn", A, Y).reshape(x.shape)
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


def test_position_attention_matches_formula_without_scaling():
    torch.manual_seed(0)
    m = _double(PositionAttention(16), gamma=0.4)
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = m.query(x).flatten(2), m.key(x).flatten(2), m.value(x).flatten(2)
        assert q.shape[1] == 2
        A = torch.einsum("bci,bcj->bij", q, k).softmax(-1)  # no 1/sqrt(d)
        ref = x + 0.4 * torch.einsum("bij,bcj->bci", A, v).reshape(x.shape)
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


def _dnl_live(m):
    with torch.no_grad():
        m.out[1].weight.fill_(1.0)
    return m


def test_dnl_matches_formula():
    torch.manual_seed(0)
    m = _dnl_live(DisentangledNonLocal(16, reduction=2, temperature=0.05).double().eval())
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = m.query(x).flatten(2), m.key(x).flatten(2), m.value(x).flatten(2)
        q = q - q.mean(-1, keepdim=True)
        k = k - k.mean(-1, keepdim=True)
        A = (torch.einsum("bci,bcj->bij", q, k) / math.sqrt(8) / 0.05).softmax(-1)
        pair = torch.einsum("bij,bcj->bci", A, v)
        u = m.unary(x).flatten(2).softmax(-1)  # B, 1, N
        unary = (v * u).sum(-1, keepdim=True)
        ref = x + m.out((pair + unary).reshape(2, 8, 3, 5))
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


def test_dnl_whitening_ignores_per_channel_offsets():
    torch.manual_seed(0)
    m = _dnl_live(DisentangledNonLocal(16).eval())
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        q, k = m.query(x), m.key(x)
        base = m.pairwise_attention(q, k)
        shifted = m.pairwise_attention(
            q + 5 * torch.randn(1, 8, 1, 1), k - 3 * torch.randn(1, 8, 1, 1)
        )
        torch.testing.assert_close(shifted, base, rtol=1e-4, atol=1e-5)
        # the whole block too: shifting the query/key conv biases changes nothing
        out = m(x)
        m.query.bias.add_(torch.randn(8) * 4)
        m.key.bias.add_(torch.randn(8) * 4)
        torch.testing.assert_close(m(x), out, rtol=1e-4, atol=1e-5)
        # while a spatially varying change of the query does change the attention
        assert not torch.allclose(m.pairwise_attention(q + torch.randn_like(q), k), base, atol=1e-3)


@pytest.mark.parametrize(
    "make, arm",
    [
        (lambda: PositionAttention(16), lambda m: m.gamma.data.fill_(1.0)),
        (lambda: ChannelAttention(), lambda m: m.gamma.data.fill_(1.0)),
        (lambda: CrissCrossAttention(16), lambda m: m.gamma.data.fill_(1.0)),
        (lambda: CompactChannelAttention(32, compact=8), lambda m: m.gamma.data.fill_(1.0)),
        (lambda: DisentangledNonLocal(16), lambda m: m.out[1].weight.data.fill_(1.0)),
        (
            lambda: DisentangledNonLocal(16, norm="none"),
            lambda m: torch.nn.init.normal_(m.out[0].weight),
        ),
    ],
    ids=["position", "channel", "criss_cross", "compact_channel", "dnl", "dnl_no_norm"],
)
def test_attention_is_identity_at_init(make, arm):
    torch.manual_seed(0)
    m = make()
    c = 32 if isinstance(m, CompactChannelAttention) else 16
    x = torch.randn(2, c, 5, 7)
    for train in (True, False):
        m.train(train)
        with torch.no_grad():
            assert torch.equal(m(x), x)
    arm(m)
    with torch.no_grad():
        assert not torch.allclose(m.eval()(x), x, atol=1e-4)


# --------------------------------------------------------------------------------------------- CRM


@pytest.mark.parametrize("order", ["channel_spatial", "spatial_channel", "parallel"])
@pytest.mark.parametrize("stages", ["all", "last"])
def test_crm_options_run(order, stages):
    m = build("crm", order=order, stages=stages).train()
    out = m(make_feats(batch=1))
    assert out.shape == (1, OUT, 4, 6)
    out.mean().backward()
    expected_in = sum(IN_CHANNELS) if stages == "all" else IN_CHANNELS[-1]
    assert m.project.in_channels == expected_in


def test_crm_orders_agree_at_init_and_differ_when_armed():
    # every order is the projection of the aggregate at init (both attentions are identities)
    feats = make_feats()
    outs = {}
    for order in ["channel_spatial", "spatial_channel", "parallel"]:
        m = build("crm", order=order).eval()
        with torch.no_grad():
            outs[order] = m(feats)
            torch.testing.assert_close(outs[order], m.project(m.aggregate(feats)))
            m.channel_attention.gamma.fill_(0.01)
            m.spatial_attention.out[1].weight.fill_(1.0)
            outs[order] = m(feats)
    assert not torch.allclose(outs["channel_spatial"], outs["spatial_channel"], atol=1e-4)
    assert not torch.allclose(outs["channel_spatial"], outs["parallel"], atol=1e-4)


def test_crm_stage_usage():
    feats = make_feats()
    changed = [f.clone() for f in feats]
    for f in changed[:3]:
        f.add_(torch.randn_like(f))
    last = build("crm", stages="last").eval()
    full = build("crm", stages="all").eval()
    with torch.no_grad():
        torch.testing.assert_close(last(changed), last(feats))  # C2-C4 not read
        assert not torch.allclose(full(changed), full(feats))
        # the aggregate: each stage average-pooled to C5's exact size, then C5
        agg = full.aggregate(feats)
        assert agg.shape == (2, sum(IN_CHANNELS), 4, 6)
        torch.testing.assert_close(agg[:, -IN_CHANNELS[-1] :], feats[-1])
        torch.testing.assert_close(
            agg[:, :16].mean((2, 3)), feats[0].mean((2, 3)), rtol=0.2, atol=0.05
        )


# ---------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "name, options, fragment",
    [
        ("crm", {"order": "sideways"}, "model.context_options.order"),
        ("crm", {"stages": "first"}, "model.context_options.stages"),
        ("crm", {"temperature": 0}, "model.context_options.temperature"),
        ("ppm", {"pool_norm": "batch"}, "model.context_options.pool_norm"),
        ("ppm", {"bins": []}, "model.context_options.bins"),
        ("dappm", {"branch_channels": 0}, "model.context_options.branch_channels"),
        ("dam", {"reduction": 1000}, "model.context_options.reduction"),
        ("ccam", {"recurrence": 0}, "model.context_options.recurrence"),
        ("ccam_dran", {"compact": 1000}, "model.context_options.compact"),
        (
            "none",
            {"bins": [1]},
            "model.context_options: none does not accept ['bins']; allowed: norm",
        ),
    ],
)
def test_bad_options_raise_user_error(name, options, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        build_context(name, IN_CHANNELS, OUT, options)


def test_bad_in_channels_raise_user_error():
    with pytest.raises(UserError, match="in_channels must be 4 positive ints"):
        CONTEXT_MODULES["crm"]([16, 32, 64], OUT)
    with pytest.raises(UserError, match="out_channels"):
        CONTEXT_MODULES["ppm"](IN_CHANNELS, 0)


# ------------------------------------------------------------------------------------------ FLOPs


def test_fvcore_counts_attention_products_exactly():
    fvcore = pytest.importorskip("fvcore.nn")
    b, c, h, w = 1, 16, 5, 7
    x = torch.randn(b, c, h, w)
    cca = CrissCrossAttention(c).eval()
    ci = c // 8
    counts = (
        fvcore.FlopCountAnalysis(cca, x)
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
    )
    expected = b * w * h * h * ci + b * h * w * w * ci + b * w * c * h * h + b * h * c * w * w
    assert counts.by_operator()["matmul"] == expected
    dnl = DisentangledNonLocal(c).eval()
    ci, n = c // 2, h * w
    counts = (
        fvcore.FlopCountAnalysis(dnl, x)
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
    )
    assert counts.by_operator()["matmul"] == b * n * n * ci * 2 + b * ci * n


@pytest.mark.parametrize("name", NAMES)
def test_every_operator_is_counted_or_deliberately_ignored(name):
    flops = pytest.importorskip("srcr.flops")
    result = flops.count_flops(
        build(name), inputs=(make_feats(batch=1),)
    )  # raises on an uncounted op
    assert result["flops"] > 0
    if name in ("dam", "ccam", "ccam_dran", "crm"):
        assert result["by_operator"]["matmul"] > 0
