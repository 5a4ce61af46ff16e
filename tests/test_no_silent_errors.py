"""Faults that used to end with exit 0 and wrong numbers, or lose the file name a user needs
(issue 22): each test reproduces one fault and asserts the refusal or the message, and, where a
wrong number was possible, that it is never written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evaluate import save_ckpt, tiny_cfg

from srcr.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def syn_root(tmp_path_factory):
    from srcr.data.synthetic_gen import ensure_synthetic

    root = tmp_path_factory.mktemp("syn") / "synthetic"
    ensure_synthetic(root, 4, 4, (32, 64), 0, workers=1, progress=False)
    return root


# 1 ---------------------------------------------------------------------------------------------------


def test_evaluate_refuses_model_settings_other_than_the_checkpoints(syn_root, tmp_path):
    from srcr.evaluate import evaluate

    cfg = tiny_cfg(syn_root, "model.align=srm", "eval.num_vis=0", "eval.offset_images=0")
    ckpt = save_ckpt(cfg, tmp_path / "run" / "checkpoints" / "final.pth")
    out = tmp_path / "eval"
    # the weights fit (same shapes), but the model computes something else
    shifted = tiny_cfg(syn_root, "model.align=srm", "eval.num_vis=0", "eval.offset_images=0",
                       "model.coarse_shift=1.0", "model.align_options={weight_norm: sigmoid}")
    with pytest.raises(UserError) as e:
        evaluate(shifted, ckpt, out, device="cpu", progress=False)
    msg = str(e.value)
    assert "model.coarse_shift: checkpoint 0.0, requested 1.0" in msg
    assert "model.align_options.weight_norm" in msg and "sigmoid" in msg
    assert "--allow-config-mismatch" in msg
    assert not (out / "metrics.json").exists() and not (out / "per_image.npz").exists()
    # the normalisation counts too
    with pytest.raises(UserError, match=r"data\.mean"):
        evaluate(tiny_cfg(syn_root, "data.mean=[1, 2, 3]"), ckpt, out, device="cpu", progress=False)
    # eval settings may differ freely; an explicit override is recorded
    rec = evaluate(shifted, ckpt, out, device="cpu", progress=False, allow_config_mismatch=True)
    stored = json.loads((out / "metrics.json").read_text())["config_mismatch"]
    assert stored == rec["config_mismatch"] and stored["allowed"] is True
    assert stored["keys"]["model.coarse_shift"]["requested"] == 1.0
    assert {"model.coarse_shift", "model.align_options.weight_norm"} <= set(stored["keys"])


# 2 ---------------------------------------------------------------------------------------------------


def test_a_key_defined_twice_is_refused_naming_file_line_and_key(tmp_path):
    from srcr.config import load_config, parse_yaml_value
    from srcr.suite.grid import load_grid

    run_cfg = tmp_path / "run.yaml"
    run_cfg.write_text("model:\n  num_classes: 10\n  align: srm\n  align: bilinear\n")
    with pytest.raises(UserError) as e:
        load_config(run_cfg)
    assert f"{run_cfg}, line 4: duplicate key 'align' (first defined on line 3)" in str(e.value)

    grid = (REPO / "ablations" / "grid.yaml").read_text()
    again = "  srm_none:\n    description: FAM under the name srm_none\n    set: {model.align: fam}\n"
    assert "\n  bilinear_crm:\n" in grid
    dup = tmp_path / "grid.yaml"  # srm_none defined a second time, after its real definition
    dup.write_text(grid.replace("\n  bilinear_crm:\n", "\n" + again + "  bilinear_crm:\n", 1))
    with pytest.raises(UserError, match=rf"{dup}, line \d+: duplicate key 'srm_none'"):
        load_grid(dup)
    with pytest.raises(UserError, match="duplicate key 'a'"):
        parse_yaml_value("{a: 1, a: 2}")
    # merge keys may be overridden on purpose
    ok = tmp_path / "merge.yaml"
    ok.write_text("base: &b {x: 1}\nmore:\n  <<: *b\n  x: 2\n")
    from srcr.config import load_yaml

    assert load_yaml(ok)["more"] == {"x": 2}
