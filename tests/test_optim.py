"""Optimiser parameter groups and the warm-up + poly learning-rate schedule."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from srcr.errors import UserError
from srcr.optim import (
    apply_lr,
    build_optimizer,
    lr_factor,
    match_custom_key,
    mmseg_name,
    param_groups,
    segnext_custom_keys,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1)
        )
        self.backbone.layer_scale = nn.Parameter(torch.full((4,), 1e-2))
        self.backbone.frozen = nn.Parameter(torch.ones(2, 2), requires_grad=False)
        self.decoder = nn.Sequential(nn.Conv2d(4, 4, 3, bias=False), nn.GroupNorm(2, 4))
        self.decoder.gamma = nn.Parameter(torch.zeros(1))
        self.head = nn.Linear(4, 2)
        self.norm = nn.LayerNorm(4)


EXPECTED = {
    "backbone.decay": {"backbone.0.weight", "backbone.2.weight"},
    "backbone.no_decay": {
        "backbone.1.weight",
        "backbone.1.bias",
        "backbone.2.bias",
        "backbone.layer_scale",
    },
    "head.decay": {"decoder.0.weight", "head.weight"},
    "head.no_decay": {
        "decoder.1.weight",
        "decoder.1.bias",
        "decoder.gamma",
        "head.bias",
        "norm.weight",
        "norm.bias",
    },
}


def _by_name(opt):
    return {g["name"]: g for g in opt.param_groups}


def test_groups_decay_and_head_multiplier():
    model = Tiny()
    opt = build_optimizer(
        model, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "head_lr_mult": 10.0}
    )
    assert isinstance(opt, torch.optim.AdamW)
    groups = _by_name(opt)
    assert {k: set(g["param_names"]) for k, g in groups.items()} == EXPECTED
    assert groups["backbone.decay"]["weight_decay"] == 0.05
    assert groups["head.decay"]["weight_decay"] == 0.05
    assert groups["backbone.no_decay"]["weight_decay"] == 0.0
    assert groups["head.no_decay"]["weight_decay"] == 0.0
    for name, g in groups.items():
        want = 1e-2 if name.startswith("head") else 1e-3
        assert g["lr"] == pytest.approx(want) and g["initial_lr"] == pytest.approx(want)
    # the frozen parameter is in no group
    all_params = [p for g in opt.param_groups for p in g["params"]]
    assert not any(p is model.backbone.frozen for p in all_params)
    assert len(all_params) == sum(len(v) for v in EXPECTED.values())


def test_no_decay_params_unchanged_by_adamw_decay():
    model = Tiny()
    opt = build_optimizer(model, {"lr": 0.1, "weight_decay": 0.5, "head_lr_mult": 1.0})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        if n in EXPECTED["backbone.decay"] | EXPECTED["head.decay"]:
            torch.testing.assert_close(p, before[n] * (1 - 0.1 * 0.5))
        else:
            torch.testing.assert_close(p, before[n])


def test_ddp_prefix_and_sgd():
    wrapper = nn.Module()
    wrapper.module = Tiny()
    opt = build_optimizer(
        wrapper,
        {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4, "head_lr_mult": 2.0},
    )
    assert isinstance(opt, torch.optim.SGD)
    groups = _by_name(opt)
    assert set(groups["backbone.decay"]["param_names"]) == EXPECTED["backbone.decay"]
    assert groups["head.decay"]["lr"] == pytest.approx(0.02)
    assert groups["head.decay"]["momentum"] == 0.9


def test_unknown_optimizer_and_keys():
    with pytest.raises(UserError, match=r"train\.optimizer\.name.*'adam'.*adamw, sgd"):
        build_optimizer(Tiny(), {"name": "adam"})
    with pytest.raises(UserError, match=r"train\.optimizer.*lr_mult"):
        build_optimizer(Tiny(), {"lr_mult": 3})
    with pytest.raises(UserError, match=r"train\.optimizer\.lr"):
        build_optimizer(Tiny(), {"lr": -1.0})


SCHED = {"power": 1.0, "warmup_iters": 100, "warmup_ratio": 1e-6, "min_lr": 0.0}


def test_lr_factor_hand_values():
    t = 1000
    assert lr_factor(0, SCHED, t) == pytest.approx(1e-6)
    assert lr_factor(50, SCHED, t) == pytest.approx(1e-6 + (1 - 1e-6) * 0.5)
    assert lr_factor(100, SCHED, t) == pytest.approx(1.0)  # warm-up end
    assert lr_factor(550, SCHED, t) == pytest.approx(0.5)  # poly midpoint of [100, 1000]
    assert lr_factor(999, SCHED, t) == pytest.approx(1 / 900)  # last iteration run
    assert lr_factor(1000, SCHED, t) == pytest.approx(0.0)
    assert lr_factor(5000, SCHED, t) == pytest.approx(0.0)
    s = dict(SCHED, power=0.9, min_lr=0.1)
    assert lr_factor(550, s, t) == pytest.approx(0.1 + 0.9 * 0.5**0.9)
    assert lr_factor(1000, s, t) == pytest.approx(0.1)
    assert lr_factor(40, s, t) == pytest.approx(1e-6 + (1 - 1e-6) * 0.4)  # warm-up ignores min_lr
    # no warm-up: plain poly over [0, T]
    assert lr_factor(250, dict(SCHED, warmup_iters=0, power=2.0), t) == pytest.approx(0.75**2)
    # monotone: rises through warm-up, falls after
    vals = [lr_factor(i, SCHED, t) for i in range(0, 1001, 10)]
    assert vals[:11] == sorted(vals[:11]) and vals[10:] == sorted(vals[10:], reverse=True)


def test_lr_factor_rejects_bad_schedule():
    with pytest.raises(UserError, match=r"train\.schedule\.warmup_iters"):
        lr_factor(0, dict(SCHED, warmup_iters=2000), 1000)
    with pytest.raises(UserError, match=r"train\.schedule.*policy"):
        lr_factor(0, dict(SCHED, policy="step"), 1000)


def test_apply_lr_scales_every_group_from_its_base():
    opt = build_optimizer(Tiny(), {"lr": 1e-3, "head_lr_mult": 10.0})
    apply_lr(opt, lr_factor(550, SCHED, 1000))
    apply_lr(opt, lr_factor(550, SCHED, 1000))  # idempotent: always from the base lr
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(0.5 * g["initial_lr"])
    # a plain optimizer without recorded base lrs: the current lr becomes the base
    plain = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.2)
    apply_lr(plain, 0.25)
    apply_lr(plain, 0.5)
    assert plain.param_groups[0]["lr"] == pytest.approx(0.1)


def test_param_groups_survive_state_dict_roundtrip():
    model = Tiny()
    opt = build_optimizer(model, {"lr": 1e-3})
    apply_lr(opt, 0.3)
    state = opt.state_dict()
    opt2 = build_optimizer(model, {"lr": 1e-3})
    opt2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx(
        [g["lr"] for g in opt.param_groups]
    )
    assert [g["name"] for g in param_groups(model, 1e-3, 0.01)] == [
        g["name"] for g in opt2.param_groups
    ]


def test_cpu_optimizers_use_the_fused_kernels_and_match_the_loop():
    # fused AdamW/SGD is the CPU default for speed; it must give the per-tensor loop's update
    for cfg in (
        {"name": "adamw", "lr": 1e-2, "weight_decay": 0.05},
        {"name": "sgd", "lr": 1e-2, "momentum": 0.9},
    ):
        torch.manual_seed(0)
        a, b = Tiny(), Tiny()
        b.load_state_dict(a.state_dict())
        fused = build_optimizer(a, cfg)
        assert all(g.get("fused") for g in fused.param_groups)
        loop_cls = torch.optim.AdamW if cfg["name"] == "adamw" else torch.optim.SGD
        loop = loop_cls(
            [
                {
                    **g,
                    "params": [dict(b.named_parameters())[n] for n in _names(a, g)],
                    "fused": None,
                    "foreach": False,
                }
                for g in fused.param_groups
            ]
        )
        x = torch.randn(4, 3, 8, 8)
        for step in range(3):
            for model, opt in ((a, fused), (b, loop)):
                opt.zero_grad()
                feat = model.decoder(model.backbone(x)) * (1 + model.decoder.gamma)
                model.head(model.norm(feat.mean((2, 3)))).square().mean().backward()
                opt.step()
            for (n, p), q in zip(a.named_parameters(), b.parameters()):
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=f"{n}, step {step}")
            # each step from equal weights: the two kernels round differently, and Adam's
            # normalised step turns a last-bit difference in a near-cancelling gradient (gamma's)
            # into a visible one a step later, which says nothing about the update rule
            b.load_state_dict(a.state_dict())


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return [n for n, p in model.named_parameters() if id(p) in ids]


# ----------------------------------------------------------------------------------------------------
# grouping: mmcv (SegNeXt's paramwise_cfg custom_keys)


def mmcv_reference(name: str, custom_keys: dict) -> tuple[float, float]:
    """mmcv's DefaultOptimizerConstructor.add_params for custom_keys, stated independently: among
    the keys contained in the parameter's full name, the longest, then the alphabetically first;
    its lr_mult and decay_mult (default 1); no matching key: (1, 1)."""
    hits = [k for k in custom_keys if k in name]
    if not hits:
        return 1.0, 1.0
    key = min(hits, key=lambda k: (-len(k), k))
    return custom_keys[key].get("lr_mult", 1.0), custom_keys[key].get("decay_mult", 1.0)


def test_custom_key_choice_is_longest_then_alphabetical():
    keys = {"a": {"lr_mult": 2.0}, "ab": {"lr_mult": 3.0}, "b": {"decay_mult": 0.0}}
    # "ab" beats the alphabetically earlier "a" because it is longer (mmcv sorts by length first)
    assert match_custom_key("x.ab.y", keys) == "ab"
    # equal lengths: the alphabetically first
    assert match_custom_key("b.a", keys) == "a"
    assert match_custom_key("zzz", keys) is None
    # SegNeXt's keys: a head norm is a head parameter (lr x10, full decay), not a norm
    assert match_custom_key("decode_head.squeeze.gn.norm.weight", segnext_custom_keys()) == "head"


@pytest.fixture(scope="module")
def mscan_s_model():
    from srcr.models.segmentor import build_model

    torch.manual_seed(0)
    return build_model(
        {"backbone": "mscan_s", "num_classes": 19, "fpn_dim": 16, "embed_dim": 8, "aux_head": True}
    )


def test_mmcv_grouping_of_mscan_s_matches_an_independent_statement(mscan_s_model):
    keys = segnext_custom_keys(10.0)
    groups = param_groups(mscan_s_model, 1e-3, 0.01, head_lr_mult=10.0, grouping="mmcv")
    got = {
        n: (g["lr_mult"], g["decay_mult"], g["lr"], g["weight_decay"])
        for g in groups
        for n in g["param_names"]
    }
    names = [n for n, p in mscan_s_model.named_parameters() if p.requires_grad]
    assert sorted(got) == sorted(names)
    for n in names:
        lr_mult, decay_mult = mmcv_reference(mmseg_name(n), keys)
        assert got[n] == pytest.approx((lr_mult, decay_mult, 1e-3 * lr_mult, 0.01 * decay_mult)), n
    # known answers, read off SegNeXt's MSCAN names (patch_embed{i}.norm, block{i}.j.norm{1,2},
    # norm{i}) and mmseg's EncoderDecoder (decode_head, auxiliary_head)
    bb = "backbone.stages_"
    expected = {
        f"{bb}0.downsample.1.weight": (1.0, 1.0),  # stem BN: patch_embed1.proj.1 has no "norm"
        f"{bb}1.downsample.1.weight": (1.0, 0.0),  # patch_embed2.norm
        f"{bb}2.blocks.0.norm1.bias": (1.0, 0.0),
        f"{bb}3.norm.weight": (1.0, 0.0),  # norm4 (LayerNorm)
        f"{bb}0.blocks.0.layer_scale_1": (1.0, 1.0),  # layer scales are decayed
        f"{bb}0.blocks.0.attn.proj_1.bias": (1.0, 1.0),  # biases too
        "decoder.fuse.1.weight": (10.0, 1.0),  # a decoder BN: "head" wins, decay kept
        "decoder.context.channel_attention.gamma": (10.0, 1.0),
        "head.1.bias": (10.0, 1.0),
        "embed_head.proj.bias": (10.0, 1.0),
        "aux_head.0.1.weight": (10.0, 1.0),
    }
    for n, want in expected.items():
        assert got[n][:2] == want, n
    # the srcr rule differs exactly there: no decay on any norm, bias or 1-D parameter
    srcr = {
        n: g["decay_mult"]
        for g in param_groups(mscan_s_model, 1e-3, 0.01, 10.0)
        for n in g["param_names"]
    }
    assert srcr[f"{bb}0.downsample.1.weight"] == srcr["decoder.fuse.1.weight"] == 0.0
    assert srcr[f"{bb}0.blocks.0.layer_scale_1"] == 0.0


def test_mmcv_grouping_custom_keys_and_errors(mscan_s_model):
    opt = build_optimizer(
        mscan_s_model, {"lr": 1e-3, "grouping": "mmcv", "head_lr_mult": 5.0, "offset_lr_mult": 1.0}
    )
    by = _by_name(opt)
    assert set(by) == {"base", "key:head", "key:norm"}
    assert by["key:head"]["lr"] == pytest.approx(
        5e-3
    )  # null custom_keys: head lr_mult = head_lr_mult
    custom = {"stages": {"lr_mult": 0.5}, "layer_scale": {"decay_mult": 0.0}}
    by = _by_name(
        build_optimizer(
            mscan_s_model,
            {"lr": 1e-3, "grouping": "mmcv", "custom_keys": custom, "offset_lr_mult": 1.0},
        )
    )
    assert "backbone.stages_0.blocks.0.layer_scale_1" in by["key:layer_scale"]["param_names"]
    assert by["key:layer_scale"]["weight_decay"] == 0.0 and by["key:layer_scale"][
        "lr"
    ] == pytest.approx(1e-3)
    with pytest.raises(UserError, match=r"train\.optimizer\.grouping.*'timm'.*srcr, mmcv"):
        build_optimizer(Tiny(), {"grouping": "timm"})
    with pytest.raises(UserError, match=r"train\.optimizer\.custom_keys\.norm.*lr_mul"):
        build_optimizer(Tiny(), {"grouping": "mmcv", "custom_keys": {"norm": {"lr_mul": 2}}})
    with pytest.raises(UserError, match=r"train\.optimizer\.custom_keys\.norm\.decay_mult"):
        build_optimizer(Tiny(), {"grouping": "mmcv", "custom_keys": {"norm": {"decay_mult": -1}}})


# Every offset- or flow-predicting layer per alignment module, named as in the full model
# (decoder.align.0-2 are the three top-down steps).
OFFSET_LAYERS = {
    "srm": ("offset",),
    "fam": ("flow",),
    "alignfa": ("offset_high.3", "offset_low.3"),
    "bilinear": (),
}


@pytest.mark.parametrize("align", sorted(OFFSET_LAYERS))
def test_offset_lr_mult_reaches_exactly_the_offset_layers(align):
    from srcr.models import ALIGN_MODULES, build_model

    assert set(OFFSET_LAYERS) == set(ALIGN_MODULES)  # a new module must be added here
    model = build_model(
        {
            "backbone": "test_efficientnet",
            "num_classes": 3,
            "fpn_dim": 8,
            "embed_dim": 8,
            "align": align,
            "context": "ppm",
        }
    )
    cfg = {"lr": 1e-3, "weight_decay": 0.01, "head_lr_mult": 10.0}
    plain = {
        n: g["lr"]
        for g in build_optimizer(model, {**cfg, "offset_lr_mult": 1.0}).param_groups
        for n in g["param_names"]
    }
    scaled = {
        n: g["lr"]
        for g in build_optimizer(model, {**cfg, "offset_lr_mult": 0.1}).param_groups
        for n in g["param_names"]
    }
    want = {
        f"decoder.align.{i}.{layer}.{p}"
        for i in range(3)
        for layer in OFFSET_LAYERS[align]
        for p in ("weight", "bias")
        if f"decoder.align.{i}.{layer}.{p}" in plain
    }
    assert set(scaled) == set(plain)
    assert {n for n in plain if scaled[n] != plain[n]} == want
    for n in want:
        assert scaled[n] == pytest.approx(0.1 * plain[n]) and plain[n] == pytest.approx(1e-2)
    # each declared layer outputs the (x, y) offset itself
    for layer in OFFSET_LAYERS[align]:
        conv = model.decoder.align[0].get_submodule(layer)
        assert isinstance(conv, nn.Conv2d) and conv.out_channels == 2
    assert len(want) == {"srm": 6, "fam": 3, "alignfa": 6, "bilinear": 0}[align]


def test_offset_groups_keep_decay_and_follow_the_schedule():
    from srcr.models import build_model

    model = build_model(
        {
            "backbone": "test_efficientnet",
            "num_classes": 3,
            "fpn_dim": 8,
            "embed_dim": 8,
            "align": "srm",
            "context": "none",
        }
    )
    opt = build_optimizer(
        model, {"lr": 1e-3, "weight_decay": 0.05, "head_lr_mult": 10.0, "offset_lr_mult": 0.25}
    )
    groups = _by_name(opt)
    assert set(groups["head.decay.offset"]["param_names"]) == {
        f"decoder.align.{i}.offset.weight" for i in range(3)
    }
    assert set(groups["head.no_decay.offset"]["param_names"]) == {
        f"decoder.align.{i}.offset.bias" for i in range(3)
    }
    assert groups["head.decay.offset"]["weight_decay"] == 0.05
    assert groups["head.no_decay.offset"]["weight_decay"] == 0.0
    apply_lr(opt, 0.5)
    assert groups["head.decay.offset"]["lr"] == pytest.approx(1e-3 * 10 * 0.25 * 0.5)
    with pytest.raises(UserError, match="train.optimizer.offset_lr_mult"):
        build_optimizer(model, {"offset_lr_mult": 0})
