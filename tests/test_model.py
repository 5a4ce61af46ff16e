"""build_model / build_backbone / the FPN decoder and heads: every align x context combination
trains at batch 1 on an odd input, outputs and attribute names follow docs/architecture.md, the
config is checked, and local checkpoints load strictly."""

from __future__ import annotations

import itertools

import pytest
import timm
import torch
import torch.nn as nn

import srcr.models.backbones.mscan_timm  # noqa: F401  (timm.create_model("mscan_t") below)
from srcr.errors import UserError
from srcr.models import ALIGN_MODULES, CONTEXT_MODULES, Segmentor, build_backbone, build_model
from srcr.models.backbones.build import load_backbone_checkpoint, select_out_indices
from srcr.models.layers import resize

TINY = "test_efficientnet"  # timm's test model: channels 24/32/48/64 at strides 4..32
H, W = 97, 181
# DNL's unary logit bias (kept, as in the authors' conv_mask): the spatial softmax is shift-invariant
SOFTMAX_SHIFT_PARAMS = ("unary.bias",)


def tiny_cfg(**kw):
    cfg = dict(backbone=TINY, num_classes=3, fpn_dim=8, embed_dim=8)
    cfg.update(kw)
    return cfg


def perturb_zeros(model: nn.Module, seed: int = 0) -> None:
    """Attention gammas and zero-initialised offset / output convs pass no gradient to what feeds
    them at init; give every exactly-zero parameter entry a small random value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            zero = p == 0
            if zero.any():
                p[zero] = 0.02 * torch.randn(int(zero.sum()), generator=g)


def random_loss(outputs: dict[str, torch.Tensor], seed: int = 0) -> torch.Tensor:
    # random weights: a plain sum of an L2-normalised embedding has zero gradient
    g = torch.Generator().manual_seed(seed)
    return sum((v * torch.randn(v.shape, generator=g)).sum() for v in outputs.values())


@pytest.mark.parametrize(
    "align,context", list(itertools.product(sorted(ALIGN_MODULES), sorted(CONTEXT_MODULES)))
)
def test_every_combination_trains_one_step(align, context):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(align=align, context=context))
    perturb_zeros(model)
    model.train()
    x = torch.randn(1, 3, H, W)
    out = model(x)
    assert set(out) == {"logits", "logits_s4", "aux", "embed"}
    s4 = model.extract(x)[0].shape[-2:]
    assert out["logits"].shape == (1, 3, H, W)
    assert out["aux"].shape == (1, 3, H, W)
    assert out["logits_s4"].shape == (1, 3, *s4)
    assert out["embed"].shape == (1, 8, *s4)
    torch.testing.assert_close(out["embed"].norm(dim=1), torch.ones(1, *s4))
    random_loss(out).backward()
    for name, p in model.named_parameters():
        assert p.requires_grad
        assert p.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
        if name.endswith(SOFTMAX_SHIFT_PARAMS):
            # a bias added to every position before a softmax over positions cancels: its gradient is
            # zero analytically, and only float rounding made it nonzero on some CPUs
            assert p.grad.abs().max() < 1e-6, (
                f"{name}: gradient {p.grad} where the softmax cancels it"
            )
            continue
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient"
    before = [p.detach().clone() for p in model.parameters()]
    torch.optim.SGD(model.parameters(), lr=1e-2).step()
    changed = sum(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert changed > len(before) // 2  # tiny grads on O(1) weights can round away in fp32
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 3, H, W)
    assert torch.isfinite(logits).all()


def test_eval_logits_are_resized_stride4_logits():
    torch.manual_seed(0)
    model = build_model(tiny_cfg(align="srm", context="none")).eval()
    x = torch.randn(2, 3, 65, 99)
    with torch.no_grad():
        logits = model(x)
        model.train()
        # dropout off so the two modes compute the same map
        model.head[0].p = 0.0
        out = model(x)
    assert logits.shape == (2, 3, 65, 99)
    assert out["logits"].shape == (2, 3, 65, 99)
    torch.testing.assert_close(out["logits"], resize(out["logits_s4"], (65, 99)))


def test_optional_heads_and_attribute_names():
    model = build_model(tiny_cfg(aux_head=False, embed_dim=0, align="fam", context="ppm"))
    assert isinstance(model, Segmentor)
    assert model.aux_head is None and model.embed_head is None
    model.train()
    out = model(torch.randn(1, 3, 33, 47))
    assert set(out) == {"logits", "logits_s4"}
    names = {n for n, _ in model.named_modules()}
    for required in (
        "backbone",
        "decoder.context",
        "decoder.laterals",
        "decoder.align.0",
        "decoder.align.1",
        "decoder.align.2",
        "decoder.fpn_convs",
        "decoder.fuse",
        "head",
    ):
        assert required in names, required
    full = build_model(tiny_cfg())
    assert {"aux_head", "embed_head"} <= {n for n, _ in full.named_modules()}
    assert isinstance(full.decoder.context, CONTEXT_MODULES["crm"])  # defaults: crm + srm
    assert all(isinstance(m, ALIGN_MODULES["srm"]) for m in full.decoder.align)


def test_decoder_wiring_strides():
    """align.0/1/2 work at strides 16/8/4, the laterals read C4/C3/C2, the fusion sees 4*fpn_dim."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg(fpn_dim=8)).eval()
    x = torch.randn(1, 3, H, W)
    feats = model.extract(x)
    with torch.no_grad():
        model(x)
    chans = model.backbone.out_channels
    assert [lat[0].in_channels for lat in model.decoder.laterals] == [chans[2], chans[1], chans[0]]
    assert model.decoder.fuse[0].in_channels == 4 * 8
    steps = model.align_steps()
    assert list(steps) == ["s16", "s8", "s4"]
    assert list(steps.values()) == list(model.decoder.align)
    offsets = model.offsets()
    assert list(offsets) == ["s16", "s8", "s4"]
    for (_step, rec), feat in zip(offsets.items(), (feats[2], feats[1], feats[0])):
        hw = feat.shape[-2:]
        assert rec["initial"].shape == (1, 2, *hw) and rec["refined"].shape == (1, 2, *hw)
        assert rec["weights"].shape == (1, 9, *hw)


def test_offsets_empty_for_bilinear_and_before_forward():
    model = build_model(tiny_cfg(align="bilinear", context="none")).eval()
    assert model.offsets() == {}
    with torch.no_grad():
        model(torch.randn(1, 3, 40, 40))
    assert model.offsets() == {}
    fam = build_model(tiny_cfg(align="fam", context="none"))
    assert fam.offsets() == {}  # nothing recorded yet


def test_untrained_srm_model_equals_bilinear_model():
    """A zero-initialised SRM is bilinear upsampling: same weights elsewhere -> same logits."""
    torch.manual_seed(0)
    srm = build_model(tiny_cfg(align="srm", context="none")).eval()
    torch.manual_seed(0)
    bil = build_model(tiny_cfg(align="bilinear", context="none")).eval()
    bil_sd = bil.state_dict()
    bil.load_state_dict({k: v for k, v in srm.state_dict().items() if k in bil_sd})
    x = torch.randn(1, 3, 57, 75)
    with torch.no_grad():
        torch.testing.assert_close(srm(x), bil(x), atol=1e-5, rtol=1e-5)


def test_build_is_deterministic():
    torch.manual_seed(3)
    a = build_model(tiny_cfg())
    torch.manual_seed(3)
    b = build_model(tiny_cfg())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_group_norm_decoder():
    model = build_model(tiny_cfg(norm="gn", align="alignfa", context="ppm"))
    for name in ("decoder", "head", "aux_head"):
        assert not any(isinstance(m, nn.BatchNorm2d) for m in getattr(model, name).modules()), name
    model.train()
    out = model(torch.randn(1, 3, 41, 43))
    assert out["logits"].shape == (1, 3, 41, 43)


# ---------------------------------------------------------------------------------------------
# config checks


@pytest.mark.parametrize(
    "cfg,needles",
    [
        (tiny_cfg(alignment="srm"), ["'alignment'", "align_options", "num_classes"]),
        (tiny_cfg(align="deform"), ["model.align", "'deform'"] + sorted(ALIGN_MODULES)),
        (tiny_cfg(context="aspp"), ["model.context", "'aspp'"] + sorted(CONTEXT_MODULES)),
        ({"backbone": TINY}, ["model.num_classes", "required"]),
        (tiny_cfg(num_classes=0), ["model.num_classes"]),
        (tiny_cfg(fpn_dim=True), ["model.fpn_dim"]),
        (tiny_cfg(embed_dim=-1), ["model.embed_dim"]),
        (tiny_cfg(dropout=1.0), ["model.dropout"]),
        (tiny_cfg(norm="ln"), ["model.norm", "bn", "gn"]),
        (tiny_cfg(aux_head="yes"), ["model.aux_head"]),
        (tiny_cfg(align_options=[3]), ["model.align_options"]),
        (
            tiny_cfg(align_options={"kernel": 3}),
            ["model.align_options", "'kernel'", "kernel_size", "weight_norm"],
        ),
        (tiny_cfg(align="bilinear", align_options={"kernel_size": 3}), ["bilinear", "(none)"]),
        (tiny_cfg(align_options={"weight_norm": "relu"}), ["weight_norm", "relu"]),
        (tiny_cfg(backbone="resnet181"), ["model.backbone", "resnet181", "resnet18"]),
        (tiny_cfg(backbone="test_vit"), ["model.backbone", "test_vit", "strides"]),
        (
            tiny_cfg(backbone_options={"out_indices": (1, 2)}),
            ["model.backbone_options", "out_indices"],
        ),
        (tiny_cfg(backbone_options={"no_such_option": 1}), ["model.backbone_options"]),
        (
            tiny_cfg(pretrained="/nonexistent/ckpt.pth"),
            ["model.pretrained", "/nonexistent/ckpt.pth"],
        ),
        ("srm", ["model", "mapping"]),
    ],
)
def test_bad_config_raises_user_error(cfg, needles):
    with pytest.raises(UserError) as e:
        build_model(cfg)
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))


# ---------------------------------------------------------------------------------------------
# backbones


def test_select_out_indices():
    assert select_out_indices([2, 4, 8, 16, 32]) == [1, 2, 3, 4]
    assert select_out_indices([4, 4, 8, 16, 16, 32]) == [1, 2, 4, 5]  # deepest map at each stride
    assert select_out_indices([4, 8, 16]) is None
    assert select_out_indices([16, 16, 16]) is None


@pytest.mark.parametrize(
    "name,channels",
    [
        ("test_efficientnet", [24, 32, 48, 64]),
        ("test_convnext", [24, 32, 48, 64]),
        ("resnet10t", [64, 128, 256, 512]),
        ("test_mambaout", [16, 32, 48, 64]),
        ("mscan_t", [32, 64, 160, 256]),
    ],
)
def test_backbone_strides_and_channels(name, channels):
    bb = build_backbone(name, {}, None)
    assert bb.feature_info.reduction() == [4, 8, 16, 32]
    assert bb.out_channels == channels and bb.out_strides == [4, 8, 16, 32]
    model = Segmentor(bb, nn.Identity(), nn.Identity())
    feats = model.extract(torch.randn(1, 3, 64, 96))  # NHWC backbones (mambaout) come back NCHW
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32))
    ]


def test_nhwc_backbone_in_a_full_model():
    model = build_model(tiny_cfg(backbone="test_mambaout", context="dam")).train()
    assert model.backbone.feature_format == "NHWC"
    out = model(torch.randn(1, 3, 65, 67))
    assert out["logits"].shape == (1, 3, 65, 67)


def test_backbone_options_reach_timm():
    bb = build_backbone("mscan_t", {"embed_dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1]}, None)
    assert bb.out_channels == [8, 16, 24, 32]


@pytest.mark.parametrize("name", ["test_efficientnet", "test_convnext"])
@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module", "mmseg"])
def test_pretrained_timm_checkpoint_loads_strictly(tmp_path, name, wrap):
    torch.manual_seed(1)
    full = timm.create_model(name, pretrained=False)  # with its classifier
    sd = full.state_dict()
    if wrap == "state_dict":
        obj = {"state_dict": sd, "meta": {"epoch": 3}}
    elif wrap == "module":
        obj = {"model": {f"module.{k}": v for k, v in sd.items()}}
    elif wrap == "mmseg":
        obj = {
            "state_dict": {
                **{f"backbone.{k}": v for k, v in sd.items()},
                "decode_head.conv_seg.weight": torch.zeros(3, 8, 1, 1),
            }
        }
    else:
        obj = sd
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    torch.manual_seed(2)
    bb = build_backbone(name, {}, str(path))
    loaded = bb.state_dict()
    checked = 0
    for k, v in loaded.items():
        src = k if k in sd else k.replace("_", ".", 1)  # timm flattens 'stages.0' to 'stages_0'
        assert torch.equal(v, sd[src]), k
        checked += 1
    assert checked == len(loaded)
    if name == "test_convnext":  # its forward_features is exactly the last stage
        x = torch.randn(1, 3, 64, 64)
        full.eval()
        bb.eval()
        with torch.no_grad():
            torch.testing.assert_close(bb(x)[-1], full.forward_features(x))


def test_pretrained_mismatch_is_a_user_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), path)
    with pytest.raises(UserError) as e:
        build_backbone(TINY, {}, str(path))
    assert str(path) in str(e.value) and "missing keys" in str(e.value)
    # right layout, wrong width
    torch.save(
        timm.create_model(
            "test_efficientnet", pretrained=False, channel_multiplier=2.0
        ).state_dict(),
        path,
    )
    with pytest.raises(UserError, match="shape mismatches"):
        build_backbone(TINY, {}, str(path))
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        build_backbone(TINY, {}, str(path))


def test_mscan_checkpoint_goes_through_its_own_loader(tmp_path):
    torch.manual_seed(4)
    opts = {"embed_dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1]}
    full = timm.create_model("mscan_t", pretrained=False, **opts)
    path = tmp_path / "mscan.pth"
    torch.save({"state_dict": full.state_dict()}, path)
    bb = build_model(
        tiny_cfg(backbone="mscan_t", backbone_options=opts, pretrained=str(path))
    ).backbone
    x = torch.randn(1, 3, 64, 64)
    full.eval()
    bb.eval()
    with torch.no_grad():
        torch.testing.assert_close(bb(x)[-1], full.forward_features(x))
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"nope.weight": torch.zeros(1)}}, bad)
    with pytest.raises(UserError):
        load_backbone_checkpoint(bb, "mscan_t", str(bad))


def test_default_model_builds_and_runs():
    model = build_model({"num_classes": 2}).eval()  # mscan_s + srm + crm, fpn_dim 256
    assert model.cfg["backbone"] == "mscan_s" and model.backbone.out_channels == [64, 128, 320, 512]
    assert model.decoder.fpn_dim == 256 and model.embed_head.proj.out_channels == 256
    with torch.no_grad():
        assert model(torch.randn(1, 3, 65, 97)).shape == (1, 2, 65, 97)
