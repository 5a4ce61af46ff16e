"""`srcr flops`: the audit (no operator goes uncounted silently), the handles against hand-derived
multiply-add counts, the per-module breakdown and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from srcr.cli import main as cli_main
from srcr.errors import UserError
from srcr.flops import (
    HANDLES,
    IGNORED_OPS,
    UncountedOpsError,
    count_flops,
    default_size,
    model_flops,
    parse_size,
)
from srcr.models import ALIGN_MODULES, CONTEXT_MODULES, build_model

SLIM = {"embed_dims": [16, 32, 64, 128], "depths": [1, 1, 2, 1]}
TINY_MODEL = {"backbone": "mscan_s", "backbone_options": SLIM, "fpn_dim": 32, "num_classes": 5}


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _flops(fn, *inputs) -> dict:
    return count_flops(_Fn(fn), inputs=tuple(inputs))


def test_ignore_list_and_handles_are_disjoint():
    assert not set(IGNORED_OPS) & set(HANDLES)
    for op in (
        "aten::_convolution",
        "aten::matmul",
        "aten::bmm",
        "aten::einsum",
        "aten::linear",
        "aten::scaled_dot_product_attention",
        "aten::grid_sampler",
        "aten::grid_sampler_2d",
        "aten::upsample_bilinear2d",
        "aten::batch_norm",
        "aten::group_norm",
        "aten::layer_norm",
    ):
        assert op in HANDLES, op
    for op in (
        "aten::add",
        "aten::mul",
        "aten::relu_",
        "aten::gelu",
        "aten::softmax",
        "aten::avg_pool2d",
        "aten::adaptive_avg_pool2d",
        "aten::mean",
        "aten::cat",
        "aten::pad",
    ):
        assert op in IGNORED_OPS, op


# ---------------------------------------------------------------------------------------------
# Handles


def test_conv_and_linear_counts():
    conv = nn.Conv2d(6, 10, 3, padding=1, groups=2)
    r = count_flops(conv, inputs=(torch.zeros(1, 6, 7, 9),))
    assert r["flops"] == (6 // 2) * 9 * 10 * 7 * 9
    lin = nn.Linear(12, 5)
    r = count_flops(lin, inputs=(torch.zeros(3, 4, 12),))
    assert r["flops"] == 3 * 4 * 12 * 5


def test_matmul_counts_batch_dims_on_either_operand():
    a, b = torch.zeros(8, 16), torch.zeros(3, 16, 5)
    # fvcore's own handle counts only 8*16*5 here (batch dims on the second operand are dropped)
    assert _flops(torch.matmul, a, b)["flops"] == 3 * 8 * 16 * 5
    assert (
        _flops(torch.matmul, torch.zeros(3, 8, 16), torch.zeros(16, 5))["flops"] == 3 * 8 * 16 * 5
    )
    assert (
        _flops(torch.matmul, torch.zeros(2, 1, 8, 16), torch.zeros(4, 16, 5))["flops"]
        == 2 * 4 * 8 * 16 * 5
    )
    assert _flops(torch.matmul, torch.zeros(16), torch.zeros(16, 5))["flops"] == 16 * 5
    assert (
        _flops(torch.bmm, torch.zeros(3, 8, 16), torch.zeros(3, 16, 5))["flops"] == 3 * 8 * 16 * 5
    )


def test_einsum_counts():
    q, k = torch.zeros(2, 8, 30), torch.zeros(2, 8, 20)
    assert _flops(lambda a, b: torch.einsum("bcn,bcm->bnm", a, b), q, k)["flops"] == 2 * 8 * 30 * 20
    # ellipsis and broadcasting
    assert (
        _flops(lambda a, b: torch.einsum("...cn,cm->...nm", a, b), q, torch.zeros(8, 4))["flops"]
        == 2 * 30 * 8 * 4
    )
    # an outer product: one multiply per output value
    assert (
        _flops(lambda a, b: torch.einsum("i,j->ij", a, b), torch.zeros(5), torch.zeros(7))["flops"]
        == 35
    )


def test_sdpa_is_counted():
    b, h, L, S, E, Ev = 2, 3, 10, 12, 8, 6
    q, k, v = torch.zeros(b, h, L, E), torch.zeros(b, h, S, E), torch.zeros(b, h, S, Ev)
    r = _flops(F.scaled_dot_product_attention, q, k, v)
    assert r["flops"] == b * h * L * S * E + b * h * L * S * Ev
    assert r["by_operator"] == {"scaled_dot_product_attention": r["flops"]}


@pytest.mark.parametrize("mode,macs", [("bilinear", 4), ("nearest", 1), ("bicubic", 16)])
def test_grid_sample_convention(mode, macs):
    x, grid = torch.zeros(1, 5, 6, 7), torch.zeros(1, 9, 11, 2)
    r = _flops(lambda a, g: F.grid_sample(a, g, mode=mode, align_corners=True), x, grid)
    assert r["flops"] == macs * 5 * 9 * 11


def test_upsample_and_norm_counts():
    x = torch.zeros(1, 4, 5, 6)
    assert (
        _flops(lambda a: F.interpolate(a, size=(9, 13), mode="bilinear", align_corners=True), x)[
            "flops"
        ]
        == 4 * 4 * 9 * 13
    )
    assert (
        _flops(lambda a: F.interpolate(a, size=(9, 13), mode="nearest"), x)["flops"] == 4 * 9 * 13
    )
    bn = nn.BatchNorm2d(4).eval()
    assert count_flops(bn, inputs=(x,))["flops"] == 2 * x.numel()
    gn = nn.GroupNorm(2, 4)
    assert count_flops(gn, inputs=(x,))["flops"] == 5 * x.numel()


def test_ignored_ops_cost_nothing_but_are_listed():
    x = torch.zeros(1, 4, 8, 8)
    r = _flops(
        lambda a: F.avg_pool2d(F.relu(a * 2 + 1).softmax(1), 2) + F.adaptive_avg_pool2d(a, 4), x
    )
    assert r["flops"] == 0
    assert {"aten::avg_pool2d", "aten::adaptive_avg_pool2d", "aten::softmax", "aten::relu"} <= set(
        r["ignored_ops"]
    )


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * x

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError


class _Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Conv2d(3, 3, 1), _Fn(torch.special.erfcx))

    def forward(self, x):
        return self.inner(x)


def test_unknown_op_fails_with_its_name_and_module():
    with pytest.raises(UncountedOpsError, match=r"aten::special_erfcx \(x1\) in inner\.1"):
        count_flops(_Holder(), inputs=(torch.zeros(1, 3, 4, 4),))
    with pytest.raises(UncountedOpsError, match=r"prim::PythonOp\._Square"):
        _flops(_Square.apply, torch.zeros(3))
    assert issubclass(UncountedOpsError, UserError)  # the CLI prints it and fails (status 2)


# ---------------------------------------------------------------------------------------------
# Hand-derived counts of the paper's modules


def test_srm_count_matches_hand_derivation():
    C, H, W, h, w = 16, 12, 20, 6, 10
    srm = ALIGN_MODULES["srm"](C)  # kernel_size 3
    r = count_flops(srm, inputs=(torch.zeros(1, C, H, W), torch.zeros(1, C, h, w)))
    k2 = 9
    expected = {
        "conv": C * (C // 2) * h * w  # reduce high (1x1) on the coarse map
        + C * (C // 2) * H * W  # reduce low (1x1)
        + 9 * C * 2 * H * W  # initial offset (3x3, C -> 2)
        + 9 * C * k2 * H * W,  # neighbour weights (3x3, C -> k*k)
        "upsample_bilinear2d": 4 * (C // 2) * H * W,  # resize of the reduced high map
        "grid_sampler": 4 * C * H * W,  # bilinear resampling of high onto the fine grid
    }
    # the neighbour-weighted offset sum, the softmax and the lateral addition are elementwise
    assert r["by_operator"] == expected
    assert r["flops"] == sum(expected.values())
    assert {"aten::softmax", "aten::add", "aten::mul"} <= set(r["ignored_ops"])


def test_danet_position_attention_matches_hand_derivation():
    from srcr.models.context.attention import PositionAttention

    C, H, W = 32, 5, 7
    N, inner = H * W, C // 8
    pam = PositionAttention(C, 8)
    r = count_flops(pam, inputs=(torch.zeros(1, C, H, W),))
    qkv = C * inner * N * 2 + C * C * N  # query, key, value 1x1 convs
    qk = N * N * inner  # energies Q K^T
    av = C * N * N  # aggregation A V
    assert r["by_operator"] == {"conv": qkv, "matmul": qk + av}
    assert r["flops"] == qkv + qk + av


# ---------------------------------------------------------------------------------------------
# Whole models


@pytest.mark.parametrize("align", sorted(ALIGN_MODULES))
def test_audit_every_align_context_combination(align):
    """No operator of any partner combination goes uncounted silently (count_flops raises
    otherwise), every breakdown module is present, and the breakdown adds up."""
    for context in sorted(CONTEXT_MODULES):
        r = model_flops({**TINY_MODEL, "align": align, "context": context}, (64, 64))
        assert r["flops"] > 0
        names = [m["name"] for m in r["modules"]]
        assert names[:9] == [
            "backbone",
            "decoder.context",
            "decoder.laterals",
            "decoder.align.0 (s16)",
            "decoder.align.1 (s8)",
            "decoder.align.2 (s4)",
            "decoder.fpn_convs",
            "decoder.fuse",
            "head",
        ], (align, context)
        assert sum(m["flops"] for m in r["modules"]) == r["flops"]
        assert sum(m["params"] for m in r["modules"]) == r["params"]
        ctx = r["modules"][1]
        assert ctx["flops"] > 0 and ctx["params"] > 0, (align, context)
        if align != "bilinear":
            assert all(m["params"] > 0 for m in r["modules"][3:6])


def test_breakdown_matches_standalone_counts_and_rest_is_the_final_resize():
    H, W, K, D = 64, 96, 5, 32
    model = build_model(
        {**TINY_MODEL, "align": "srm", "context": "crm", "aux_head": False, "embed_dim": 0}
    )
    r = count_flops(model, (H, W))
    by = {m["path"]: m for m in r["modules"]}
    # outside the listed modules: the decoder's resizes of P3, P4, P5' to P2 before the fusion...
    assert by["decoder"]["name"] == "decoder (other)"
    assert (
        by["decoder"]["flops"] == 3 * 4 * D * (H // 4) * (W // 4) and by["decoder"]["params"] == 0
    )
    # ... and, at the top level, the final bilinear resize of the logits
    assert by[""]["name"] == "(rest)"
    assert by[""]["flops"] == 4 * K * H * W and by[""]["params"] == 0
    s4 = count_flops(
        model.decoder.align[2],
        inputs=(torch.zeros(1, D, H // 4, W // 4), torch.zeros(1, D, H // 8, W // 8)),
    )
    assert by["decoder.align.2"]["flops"] == s4["flops"]
    bb = count_flops(model.backbone, (H, W))
    assert by["backbone"]["flops"] == bb["flops"] and by["backbone"]["params"] == bb["params"]
    assert r["params"] == sum(p.numel() for p in model.parameters())


def test_model_flops_excludes_training_heads():
    with_heads = build_model({**TINY_MODEL, "aux_head": True, "embed_dim": 16})
    r = model_flops({**TINY_MODEL, "aux_head": True, "embed_dim": 16}, (64, 64))
    heads = sum(
        p.numel() for n in ("aux_head", "embed_head") for p in getattr(with_heads, n).parameters()
    )
    assert heads > 0
    assert r["params"] == sum(p.numel() for p in with_heads.parameters()) - heads


def test_default_sizes_and_size_parsing():
    assert default_size({"data": {"dataset": "cityscapes"}}) == (1024, 2048)
    assert default_size({"data": {"dataset": "bdd100k"}}) == (720, 1280)
    assert default_size({"data": {"dataset": "ade20k"}}) == (512, 512)
    assert default_size({"data": {"dataset": "synthetic", "synthetic": {"size": [128, 256]}}}) == (
        128,
        256,
    )
    assert parse_size("1024x2048") == (1024, 2048)
    for bad in ("1024", "0x5", "axb", "10x-3"):
        with pytest.raises(UserError, match="--size"):
            parse_size(bad)


def test_cli_writes_json(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model": {k: v for k, v in TINY_MODEL.items()},
                "data": {"dataset": "synthetic", "synthetic": {"size": [64, 96]}},
            }
        )
    )
    out = tmp_path / "flops.json"
    assert (
        cli_main(["flops", "--config", str(cfg), "--json", str(out), "--set", "model.align=fam"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "decoder.align.2 (s4)" in printed and "total" in printed
    data = json.loads(out.read_text())
    assert data["size"] == [64, 96] and data["inputs"] == [[1, 3, 64, 96]]
    assert data["model"]["align"] == "fam"
    direct = model_flops({**TINY_MODEL, "align": "fam"}, (64, 96))
    assert data["flops"] == direct["flops"] and data["params"] == direct["params"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind

    assert cli_main(["flops", "--config", str(cfg), "--size", "64x"]) == 2
    assert "--size" in capsys.readouterr().err
