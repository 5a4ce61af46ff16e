"""MSCAN (SegNeXt) backbone: timm registry, feature maps, official checkpoint layout, sizes."""

from __future__ import annotations

import functools

import pytest
import timm
import torch
import torch.nn.functional as F

import srcr.models.backbones.mscan_timm  # noqa: F401  (registers the MSCAN models with timm)
from srcr.errors import UserError
from srcr.models.backbones.mscan import (
    MSCAN,
    load_mscan_checkpoint,
    official_to_srcr_key,
    srcr_to_official_key,
)

SLIM = dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 2, 1])

CHANNELS = {
    "mscan_t": [32, 64, 160, 256],
    "mscan_s": [64, 128, 320, 512],
    "mscan_b": [64, 128, 320, 512],
    "mscan_l": [64, 128, 320, 512],
}
# SegNeXt paper (ImageNet-1K classification table): MSCAN-T 4.2M, S 13.9M, B 26.8M, L 45.2M
# parameters, counted with the 1000-class classifier.
PUBLISHED_PARAMS_M = {"mscan_t": 4.2, "mscan_s": 13.9, "mscan_b": 26.8, "mscan_l": 45.2}


@functools.cache
def _full(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name)


def test_registered_with_timm():
    names = timm.list_models("mscan_*")
    assert set(names) >= {"mscan_t", "mscan_s", "mscan_b", "mscan_l"}


@pytest.mark.parametrize("name", ["mscan_t", "mscan_s", "mscan_b", "mscan_l"])
def test_features_only_shapes_and_feature_info(name):
    torch.manual_seed(0)
    m = timm.create_model(name, features_only=True).eval()
    assert m.feature_info.channels() == CHANNELS[name]
    assert m.feature_info.reduction() == [4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        outs = m(x)
    assert [tuple(o.shape) for o in outs] == [
        (1, c, 64 // r, 96 // r) for c, r in zip(CHANNELS[name], [4, 8, 16, 32])
    ]
    assert all(torch.isfinite(o).all() for o in outs)


def test_features_only_matches_forward_stages_and_out_indices():
    torch.manual_seed(0)
    full = timm.create_model("mscan_s", num_classes=0, **SLIM).eval()
    feats = timm.create_model("mscan_s", features_only=True, out_indices=(1, 3), **SLIM).eval()
    feats.load_state_dict(
        {
            k.replace("stages.", "stages_", 1): v
            for k, v in full.state_dict().items()
            if k.startswith("stages.")
        }
    )
    x = torch.randn(2, 3, 61, 77)  # odd sizes: every conv pads, strides round up
    with torch.no_grad():
        ref = full.forward_stages(x)
        out = feats(x)
    assert feats.feature_info.channels() == [32, 128]
    assert feats.feature_info.reduction() == [8, 32]
    assert [tuple(r.shape[-2:]) for r in ref] == [(16, 20), (8, 10), (4, 5), (2, 3)]
    torch.testing.assert_close(out[0], ref[1])
    torch.testing.assert_close(out[1], ref[3])


def test_slim_kwargs_through_create_model():
    m = timm.create_model(
        "mscan_s", features_only=True, mlp_ratios=[2, 2, 2, 2], drop_path_rate=0.0, **SLIM
    )
    assert m.feature_info.channels() == [16, 32, 64, 128]
    blocks = [k for k in m.state_dict() if k.endswith("layer_scale_1")]
    assert len(blocks) == sum(SLIM["depths"])
    assert m.stages_0.blocks[0].mlp.fc1.out_channels == 32
    with pytest.raises(ValueError, match="4 stages"):
        timm.create_model("mscan_s", embed_dims=[16, 32, 64], depths=[1, 1, 1])


def test_drop_path_schedule():
    m = timm.create_model("mscan_l")
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for s in m.stages for b in s.blocks]
    assert len(rates) == 3 + 5 + 27 + 3
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert all(a <= b for a, b in zip(rates, rates[1:]))


@pytest.mark.parametrize("name", ["mscan_t", "mscan_s", "mscan_b", "mscan_l"])
def test_parameter_counts_match_published(name):
    n = sum(p.numel() for p in _full(name).parameters()) / 1e6
    assert n == pytest.approx(PUBLISHED_PARAMS_M[name], rel=0.03), n


def test_layer_scale_and_norm_layout():
    m = timm.create_model("mscan_t")
    blk = m.stages[2].blocks[0]
    torch.testing.assert_close(blk.layer_scale_1.detach(), torch.full((160,), 1e-2))
    assert isinstance(blk.norm1, torch.nn.BatchNorm2d) and isinstance(
        blk.norm2, torch.nn.BatchNorm2d
    )
    assert isinstance(m.stages[2].norm, torch.nn.LayerNorm)
    sgu = blk.attn.spatial_gating_unit
    assert [
        tuple(getattr(sgu, n).kernel_size)
        for n in (
            "conv0",
            "conv0_1",
            "conv0_2",
            "conv1_1",
            "conv1_2",
            "conv2_1",
            "conv2_2",
            "conv3",
        )
    ] == [(5, 5), (1, 7), (7, 1), (1, 11), (11, 1), (1, 21), (21, 1), (1, 1)]


# ----------------------------------------------------------------------------------------------
# The official checkpoint layout


def _official_sd(model: MSCAN) -> dict[str, torch.Tensor]:
    return {srcr_to_official_key(k): v.clone() for k, v in model.state_dict().items()}


def _reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, depths) -> list[torch.Tensor]:
    """SegNeXt's MSCAN.forward written out functionally over the official key names (eval-mode BN,
    token-layout LayerNorm), independent of the module code under test."""

    def bn(x, p):
        return F.batch_norm(
            x,
            sd[p + ".running_mean"],
            sd[p + ".running_var"],
            sd[p + ".weight"],
            sd[p + ".bias"],
            False,
            0.0,
            1e-5,
        )

    def conv(x, p, stride=1, groups=1):
        w = sd[p + ".weight"]
        pad = (w.shape[2] // 2, w.shape[3] // 2)
        return F.conv2d(x, w, sd[p + ".bias"], stride, pad, 1, groups)

    outs = []
    for i in range(4):
        s = i + 1
        if i == 0:
            x = conv(x, "patch_embed1.proj.0", stride=2)
            x = F.gelu(bn(x, "patch_embed1.proj.1"))
            x = bn(conv(x, "patch_embed1.proj.3", stride=2), "patch_embed1.proj.4")
        else:
            x = bn(conv(x, f"patch_embed{s}.proj", stride=2), f"patch_embed{s}.norm")
        B, C, H, W = x.shape
        for j in range(depths[i]):
            p = f"block{s}.{j}"
            y = bn(x, p + ".norm1")
            u = F.gelu(conv(y, p + ".attn.proj_1"))
            g = p + ".attn.spatial_gating_unit"
            a = conv(u, g + ".conv0", groups=C)
            a = (
                a
                + conv(conv(a, g + ".conv0_1", groups=C), g + ".conv0_2", groups=C)
                + conv(conv(a, g + ".conv1_1", groups=C), g + ".conv1_2", groups=C)
                + conv(conv(a, g + ".conv2_1", groups=C), g + ".conv2_2", groups=C)
            )
            y = conv(conv(a, g + ".conv3") * u, p + ".attn.proj_2") + y
            x = x + sd[p + ".layer_scale_1"][:, None, None] * y
            y = bn(x, p + ".norm2")
            y = conv(y, p + ".mlp.fc1")
            y = F.gelu(conv(y, p + ".mlp.dwconv.dwconv", groups=y.shape[1]))
            y = conv(y, p + ".mlp.fc2")
            x = x + sd[p + ".layer_scale_2"][:, None, None] * y
        t = x.flatten(2).transpose(1, 2)
        t = F.layer_norm(t, (C,), sd[f"norm{s}.weight"], sd[f"norm{s}.bias"], 1e-5)
        x = t.reshape(B, H, W, C).permute(0, 3, 1, 2)
        outs.append(x)
    return outs


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    # non-trivial BN statistics and layer scales, so every parameter matters to the output
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return model.eval()


def test_official_key_names():
    m = timm.create_model("mscan_t", num_classes=0)
    keys = set(_official_sd(m))
    for k in [
        "patch_embed1.proj.0.weight",
        "patch_embed1.proj.1.running_mean",
        "patch_embed1.proj.4.bias",
        "patch_embed2.proj.weight",
        "patch_embed2.norm.weight",
        "patch_embed4.norm.running_var",
        "block1.0.norm1.weight",
        "block1.0.attn.proj_1.weight",
        "block1.0.attn.spatial_gating_unit.conv0.weight",
        "block1.0.attn.spatial_gating_unit.conv2_2.bias",
        "block1.0.attn.spatial_gating_unit.conv3.weight",
        "block1.0.attn.proj_2.bias",
        "block1.0.layer_scale_1",
        "block1.0.layer_scale_2",
        "block3.4.mlp.fc1.weight",
        "block3.4.mlp.dwconv.dwconv.weight",
        "block4.1.mlp.fc2.bias",
        "norm1.weight",
        "norm4.bias",
    ]:
        assert k in keys, k
    for k in keys:
        assert srcr_to_official_key(official_to_srcr_key(k)) == k
    assert official_to_srcr_key("decode_head.conv_seg.weight") is None


def test_matches_reference_forward_over_official_keys():
    torch.manual_seed(0)
    m = _randomised(timm.create_model("mscan_t", num_classes=0, depths=[1, 2, 1, 1]), seed=1)
    x = torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        ours = m.forward_stages(x)
        ref = _reference_forward(_official_sd(m), x, [1, 2, 1, 1])
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("wrapped", ["mmcv", "mmseg_segmentor", "raw"])
def test_load_official_checkpoint_roundtrip(tmp_path, wrapped):
    torch.manual_seed(0)
    src = _randomised(timm.create_model("mscan_s", num_classes=0, **SLIM), seed=2)
    sd = _official_sd(src)
    sd["head.weight"] = torch.randn(1000, 128)  # the ImageNet classifier: skipped by a backbone
    sd["head.bias"] = torch.randn(1000)
    if wrapped == "mmcv":
        obj = {"meta": {"epoch": 300}, "state_dict": sd}
    elif wrapped == "mmseg_segmentor":
        obj = {
            "state_dict": {
                **{f"backbone.{k}": v for k, v in sd.items()},
                "decode_head.conv_seg.weight": torch.zeros(19, 256, 1, 1),
            }
        }
    else:
        obj = sd
    path = tmp_path / "mscan_s.pth"
    torch.save(obj, path)

    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = src.forward_stages(x)

    torch.manual_seed(123)
    fresh = timm.create_model("mscan_s", num_classes=0, **SLIM).eval()
    info = load_mscan_checkpoint(fresh, path)
    assert sorted(info["skipped"]) == ["head.bias", "head.weight"]
    with torch.no_grad():
        out = fresh.forward_stages(x)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    # timm's features_only wrapper, whole and pruned
    feats = timm.create_model("mscan_s", features_only=True, **SLIM).eval()
    load_mscan_checkpoint(feats, path)
    with torch.no_grad():
        for a, b in zip(feats(x), ref):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    pruned = timm.create_model("mscan_s", features_only=True, out_indices=(0, 1), **SLIM).eval()
    info = load_mscan_checkpoint(pruned, path)
    assert any(k.startswith("block3.") for k in info["skipped"])
    with torch.no_grad():
        torch.testing.assert_close(pruned(x)[1], ref[1], rtol=0, atol=0)


def test_classifier_loads_into_classification_model(tmp_path):
    torch.manual_seed(0)
    src = _randomised(timm.create_model("mscan_t", num_classes=10, **SLIM), seed=3)
    path = tmp_path / "cls.pth"
    torch.save({"state_dict": _official_sd(src)}, path)
    fresh = timm.create_model("mscan_t", num_classes=10, **SLIM).eval()
    assert load_mscan_checkpoint(fresh, path) == {"skipped": []}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), src(x), rtol=0, atol=0)


def test_own_key_layout_loads(tmp_path):
    src = _randomised(timm.create_model("mscan_t", num_classes=0, **SLIM), seed=4)
    path = tmp_path / "ours.pth"
    torch.save({"model": src.state_dict()}, path)
    fresh = timm.create_model("mscan_t", features_only=True, **SLIM).eval()
    load_mscan_checkpoint(fresh, path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)[3], src.forward_stages(x)[3], rtol=0, atol=0)


def test_bad_checkpoints_raise_user_error(tmp_path):
    m = timm.create_model("mscan_s", num_classes=0, **SLIM)
    sd = _official_sd(_randomised(timm.create_model("mscan_s", num_classes=0, **SLIM), seed=5))

    with pytest.raises(UserError, match="does not exist"):
        load_mscan_checkpoint(m, tmp_path / "nope.pth")

    p = tmp_path / "garbage.pth"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        load_mscan_checkpoint(m, p)

    missing = {k: v for k, v in sd.items() if not k.startswith("block2.")}
    torch.save({"state_dict": missing}, p)
    with pytest.raises(UserError, match=r"missing keys: .*stages\.1\.blocks\.0"):
        load_mscan_checkpoint(m, p)

    extra = {**sd, "block2.0.attn.extra_conv.weight": torch.zeros(3), "mystery": torch.zeros(1)}
    torch.save({"state_dict": extra}, p)
    with pytest.raises(UserError, match="unexpected keys: .*mystery"):
        load_mscan_checkpoint(m, p)

    # a checkpoint of another size: shape mismatch
    other = _official_sd(
        timm.create_model("mscan_t", num_classes=0, **{**SLIM, "embed_dims": [8, 16, 32, 64]})
    )
    torch.save(other, p)
    with pytest.raises(UserError, match="shape mismatch"):
        load_mscan_checkpoint(m, p)


def test_pretrained_true_refuses_to_download():
    with pytest.raises(UserError, match="local"):
        timm.create_model("mscan_t", pretrained=True)


def test_respects_input_device_and_dtype():
    m = timm.create_model("mscan_t", features_only=True, **SLIM).eval().double()
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 32, 32, dtype=torch.float64))
    assert all(o.dtype == torch.float64 for o in outs)
