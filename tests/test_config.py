"""Config loading: defaults, schema validation messages, --set overrides, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from srcr.config import (
    apply_overrides,
    config_diff,
    defaults,
    dump_config,
    flatten,
    load_config,
    parse_yaml_value,
    schema,
)
from srcr.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(
    p
    for p in (REPO / "config").glob("*.yaml")
    if not yaml.safe_load(p.read_text()).get("base_config")
)  # run configs, not suite configs


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str, overrides=()) -> str:
    with pytest.raises(UserError) as e:
        load_config(write(tmp_path, text), list(overrides))
    return str(e.value)


def test_defaults_come_from_schema_and_fill_missing_keys(tmp_path):
    cfg = load_config(write(tmp_path, "model: {num_classes: 7}\n"))
    assert cfg["model"]["num_classes"] == 7
    assert cfg["model"]["align"] == "srm" and cfg["model"]["context"] == "crm"
    assert cfg["train"]["optimizer"] == {
        "name": "adamw",
        "lr": 6.0e-5,
        "weight_decay": 0.01,
        "betas": [0.9, 0.999],
        "momentum": 0.9,
        "head_lr_mult": 10.0,
        "grouping": "srcr",
        "custom_keys": None,
        "offset_lr_mult": 0.1,
    }
    assert cfg["eval"]["stride"] == [768, 768]
    assert cfg["train"]["keep_checkpoints"] == 2
    # every schema leaf with a default is present in defaults(); num_classes has none (required)
    d = defaults()
    assert "num_classes" not in d["model"]
    assert set(d) == set(schema()["properties"])


def test_unknown_key_names_path_and_allowed_keys(tmp_path):
    msg = error_of(tmp_path, "model: {num_classes: 3, fpn_dims: 32}\n")
    assert "unknown key 'model.fpn_dims'" in msg
    assert "fpn_dim" in msg and "backbone" in msg  # the allowed keys are listed
    msg = error_of(tmp_path, "model: {num_classes: 3}\ntrain: {optimizer: {nme: sgd}}\n")
    assert "train.optimizer.nme" in msg and "name, lr" in msg
    msg = error_of(tmp_path, "model: {num_classes: 3}\nextra: 1\n")
    assert "unknown key 'extra'" in msg


def test_wrong_type_names_key_value_and_expected_type(tmp_path):
    msg = error_of(tmp_path, "model: {num_classes: 3, fpn_dim: '32'}\n")
    assert "model.fpn_dim" in msg and "'32'" in msg and "expected an integer" in msg
    msg = error_of(tmp_path, "model: {num_classes: 3}\ntrain: {channels_last: 1}\n")
    assert "train.channels_last" in msg and "true or false" in msg
    msg = error_of(tmp_path, "model: {num_classes: 3}\ntrain: {amp: 1}\n")
    assert "train.amp: 1 is not allowed; expected one of: true, false, always" in msg
    msg = error_of(tmp_path, "model: {num_classes: 3}\neval: {crop_size: [512]}\n")
    assert "eval.crop_size" in msg and "exactly 2" in msg
    msg = error_of(tmp_path, "model: {num_classes: 3}\ntrain: {optimizer: {lr: -1}}\n")
    assert "train.optimizer.lr" in msg and "> 0" in msg


def test_unknown_module_name_lists_allowed_values(tmp_path):
    msg = error_of(tmp_path, "model: {num_classes: 3, align: sfm}\n")
    assert "model.align" in msg and "'sfm'" in msg
    for name in ("bilinear", "fam", "alignfa", "srm"):
        assert name in msg
    msg = error_of(tmp_path, "model: {num_classes: 3, context: aspp}\n")
    assert "model.context" in msg and "ccam_dran" in msg and "dappm" in msg
    msg = error_of(tmp_path, "model: {num_classes: 3}\ntrain: {optimizer: {name: adam}}\n")
    assert "train.optimizer.name" in msg and "'adam'" in msg and "adamw, sgd" in msg
    msg = error_of(tmp_path, "model: {num_classes: 3}\ndata: {dataset: voc}\n")
    assert "data.dataset" in msg and "cityscapes, bdd100k, ade20k, synthetic" in msg


def test_all_errors_reported_together_and_required_key(tmp_path):
    msg = error_of(tmp_path, "model: {align: x, context: y}\n")
    assert "missing required key 'model.num_classes'" in msg
    assert "model.align" in msg and "model.context" in msg


def test_semantic_checks(tmp_path):
    msg = error_of(
        tmp_path,
        "model: {num_classes: 3}\neval: {mode: slide, crop_size: [64, 64], stride: [80, 32]}\n",
    )
    assert "eval.stride[0]" in msg
    msg = error_of(
        tmp_path, "model: {num_classes: 3}\ndata: {train_pipeline: {ratio_range: [2.0, 0.5]}}\n"
    )
    assert "ratio_range" in msg


def test_bad_yaml_and_missing_file(tmp_path):
    msg = error_of(tmp_path, "model: {num_classes: 3\n")
    assert "not valid YAML" in msg
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    assert "expected a mapping" in error_of(tmp_path, "- 1\n- 2\n")


def test_scientific_notation_without_dot_is_a_float(tmp_path):
    cfg = load_config(write(tmp_path, "model: {num_classes: 3}\ntrain: {optimizer: {lr: 6e-5}}\n"))
    assert cfg["train"]["optimizer"]["lr"] == pytest.approx(6e-5)
    assert parse_yaml_value("1e-3") == pytest.approx(1e-3)
    assert parse_yaml_value("[512, 1024]") == [512, 1024]
    assert parse_yaml_value("null") is None and parse_yaml_value("srm") == "srm"


def test_overrides(tmp_path):
    p = write(tmp_path, "model: {num_classes: 3}\n")
    cfg = load_config(
        p,
        [
            "train.iterations=12",
            "train.optimizer.lr=1e-3",
            "eval.crop_size=[64, 96]",
            "eval.stride=[32, 48]",
            "model.align=bilinear",
            "model.backbone_options.depths=[1, 1, 1, 1]",
            "model.align_options={kernel_size: 1}",
            "eval.scale=null",
            "seed=3",
        ],
    )
    assert cfg["train"]["iterations"] == 12
    assert cfg["train"]["optimizer"]["lr"] == pytest.approx(1e-3)
    assert cfg["eval"]["crop_size"] == [64, 96]
    assert cfg["model"]["align"] == "bilinear"
    assert cfg["model"]["backbone_options"] == {
        "depths": [1, 1, 1, 1]
    }  # free-form options accept any key
    assert cfg["model"]["align_options"] == {"kernel_size": 1}
    assert cfg["seed"] == 3


def test_override_errors(tmp_path):
    p = write(tmp_path, "model: {num_classes: 3}\n")
    with pytest.raises(UserError, match=r"unknown key 'train\.iteration'.*iterations"):
        load_config(p, ["train.iteration=5"])
    with pytest.raises(UserError, match="unknown key 'modle'"):
        load_config(p, ["modle.align=srm"])
    with pytest.raises(UserError, match="is a value, not a section"):
        load_config(p, ["train.iterations.x=5"])
    with pytest.raises(UserError, match="KEY.PATH=VALUE"):
        load_config(p, ["train.iterations"])
    # an override is validated like the file: bad enum value names the key and the allowed values
    with pytest.raises(
        UserError, match=r"model\.align: 'sfm' is not allowed; expected one of: bilinear"
    ):
        load_config(p, ["model.align=sfm"])
    with pytest.raises(UserError, match=r"train\.iterations: expected an integer, got 'many'"):
        load_config(p, ["train.iterations=many"])


def test_apply_overrides_does_not_mutate():
    base = load_config(None, ["model.num_classes=4"])
    out = apply_overrides(base, ["model.fpn_dim=8"])
    assert base["model"]["fpn_dim"] == 256 and out["model"]["fpn_dim"] == 8


def test_diff_and_flatten_and_dump_roundtrip():
    a = load_config(None, ["model.num_classes=4"])
    b = apply_overrides(a, ["train.iterations=5", "model.backbone_options={depths: [1, 1, 1, 1]}"])
    assert config_diff(a, b) == [
        "model.backbone_options",
        "model.backbone_options.depths",
        "train.iterations",
    ]
    assert config_diff(a, b, ignore=["train"]) == [
        "model.backbone_options",
        "model.backbone_options.depths",
    ]
    assert config_diff(a, a) == []
    assert flatten({"a": {"b": 1, "c": {}}}) == {"a.b": 1, "a.c": {}}
    assert yaml.safe_load(dump_config(b)) == b


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path, tmp_path):
    over = []
    if (yaml.safe_load(path.read_text()).get("data") or {}).get("dataset") == "folder":
        from dataset_fixtures import (
            make_folder,
        )  # its class count comes from the data's classes.yaml

        over = [f"data.root={make_folder(tmp_path / 'data', n_per_split=1)}"]
    cfg = load_config(path, over)
    assert cfg["model"]["num_classes"] >= 1
    # every key the file sets is a real key (the schema rejects unknown ones); default.yaml documents all
    if path.name == "default.yaml":
        documented = set(flatten(yaml.safe_load(path.read_text())))
        for key in flatten(defaults()):
            assert key in documented or any(d.startswith(key + ".") for d in documented), key
