"""srcr's native MSCAN backbone against timm's ``features_only`` build: same keys, weights for a
seed, outputs and checkpoints, and building the default model does not import timm or torchvision."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import yaml

import srcr.models.backbones.mscan_timm  # noqa: F401  (registers the MSCAN models with timm)
from srcr.errors import UserError
from srcr.models import build_backbone, build_model
from srcr.models.backbones.mscan import MSCANFeatures, drop_path, mscan_features

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())["model"]
SLIM = DEFAULT_MODEL["backbone_options"]  # embed_dims 16/32/64/128, depths 1/1/2/1, no drop path
OPTIONS = [pytest.param({}, id="default"), pytest.param(SLIM, id="slim")]


def _both(
    options: dict, seed: int = 0
) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor, torch.Tensor]:
    """timm's and the native mscan_t under one seed, with a draw from the RNG after each build."""
    torch.manual_seed(seed)
    ref = timm.create_model("mscan_t", features_only=True, **options)
    after_ref = torch.rand(4)
    torch.manual_seed(seed)
    nat = build_backbone("mscan_t", options)
    after_nat = torch.rand(4)
    return ref, nat, after_ref, after_nat


@pytest.mark.parametrize("options", OPTIONS)
def test_native_matches_timm_weights_and_attributes(options):
    ref, nat, after_ref, after_nat = _both(options)
    assert isinstance(nat, MSCANFeatures)
    ref_sd, nat_sd = ref.state_dict(), nat.state_dict()
    assert list(nat_sd) == list(ref_sd)
    for k, v in ref_sd.items():
        assert nat_sd[k].dtype == v.dtype and torch.equal(nat_sd[k], v), k
    torch.testing.assert_close(after_nat, after_ref, rtol=0, atol=0)  # same RNG consumption
    assert nat.feature_info.info == ref.feature_info.info
    assert nat.feature_info.out_indices == ref.feature_info.out_indices
    assert nat.feature_info.channels() == ref.feature_info.channels() == nat.out_channels
    assert nat.feature_info.reduction() == [4, 8, 16, 32] == nat.out_strides
    assert nat.feature_format == "NCHW" and nat.training == ref.training


@pytest.mark.parametrize("options", OPTIONS)
def test_native_matches_timm_forward(options):
    ref, nat, _, _ = _both(options, seed=1)
    x = torch.randn(2, 3, 61, 77)
    with torch.no_grad():
        torch.manual_seed(2)  # train mode: the same drop-path draws (default mscan_t drops 0..0.1)
        ref_train = ref(x)
        torch.manual_seed(2)
        nat_train = nat(x)
        ref.eval()
        nat.eval()
        ref_eval, nat_eval = ref(x), nat(x)
    for a, b in zip(ref_train + ref_eval, nat_train + nat_eval):
        assert a.shape == b.shape and torch.equal(a, b)
    assert len(nat_eval) == 4


def test_drop_path_is_timms():
    from timm.layers import drop_path as timm_drop_path

    x = torch.randn(6, 3, 4, 5)
    assert drop_path(x, 0.3, training=False) is x and drop_path(x, 0.0, training=True) is x
    for p in (0.3, 1.0):
        torch.manual_seed(3)
        ref = timm_drop_path(x, p, training=True)
        torch.manual_seed(3)
        assert torch.equal(drop_path(x, p, training=True), ref)


def test_default_model_builds_without_timm_or_torchvision():
    code = (
        "import sys, yaml; from srcr.models import build_model; "
        f"cfg = yaml.safe_load(open({str(ROOT / 'config' / 'default.yaml')!r}))['model']; "
        "m = build_model(cfg); assert type(m.backbone).__name__ == 'MSCANFeatures'; "
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('timm', 'torchvision')); "
        "assert not bad, bad"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


def test_timm_era_checkpoint_loads_strictly():
    # an srcr checkpoint written when the backbone was timm's FeatureListNet ('backbone.stages_0...')
    torch.manual_seed(4)
    old = build_model(DEFAULT_MODEL)
    old.backbone = timm.create_model("mscan_t", features_only=True, **SLIM)
    with torch.no_grad():
        for p in old.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = old.state_dict()
    torch.manual_seed(5)
    new = build_model(DEFAULT_MODEL)
    assert isinstance(new.backbone, MSCANFeatures)
    new.load_state_dict(ckpt, strict=True)
    old.eval()
    new.eval()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(new(x), old(x))


def test_timm_wrapper_state_dict_as_pretrained(tmp_path):
    torch.manual_seed(6)
    ref = timm.create_model("mscan_t", features_only=True, **SLIM)
    path = tmp_path / "wrapper.pth"
    torch.save({"state_dict": ref.state_dict()}, path)
    torch.manual_seed(7)
    nat = build_backbone("mscan_t", SLIM, str(path))
    for k, v in ref.state_dict().items():
        assert torch.equal(nat.state_dict()[k], v), k


@pytest.mark.parametrize(
    "options,needles",
    [
        (
            {"no_such_option": 1},
            ["model.backbone_options", "mscan_t", "no_such_option", "unexpected keyword"],
        ),
        ({"embed_dims": [16, 32, 64]}, ["model.backbone", "mscan_t", "4 stages"]),
        ({"out_indices": (0, 1)}, ["model.backbone_options", "out_indices"]),
    ],
)
def test_native_bad_options_are_user_errors(options, needles):
    with pytest.raises(UserError) as e:
        build_backbone("mscan_t", options)
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))


def test_none_options_are_dropped_like_timm():
    assert mscan_features("mscan_t", drop_path_rate=None).stages_3.blocks[
        -1
    ].drop_path.drop_prob == pytest.approx(0.1)


@pytest.mark.parametrize(
    "name,channels", [("resnet18", [64, 128, 256, 512]), ("test_efficientnet", [24, 32, 48, 64])]
)
def test_other_names_still_go_through_timm(name, channels):
    bb = build_backbone(name, {}, None)
    assert not isinstance(bb, MSCANFeatures)
    assert type(bb).__module__.startswith("timm.")
    assert bb.out_channels == channels and bb.feature_info.reduction() == [4, 8, 16, 32]
