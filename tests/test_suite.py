"""The suite's pieces without Snakemake: grid parsing and its errors, the plan a suite config makes,
runs.csv from a fabricated results tree (values equal the inputs), and the plain tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from suite_helpers import fabricate, suite

from srcr.cli import main
from srcr.errors import UserError
from srcr.suite.grid import load_grid
from srcr.suite.plan import make_plan

REPO = Path(__file__).resolve().parents[1]


def write_grid(path: Path, grid: dict) -> Path:
    path.write_text(yaml.safe_dump(grid))
    return path


GOOD = {
    "variants": {
        "a": {"set": {"model.align": "bilinear"}},
        "b": {"set": {"model.align": "srm", "model.align_options": {"kernel_size": 5}}},
    },
    "tables": {
        "t": {"baseline": "a", "variants": ["a", "b"]},
        "u": {"baseline": "b", "variants": ["b"]},
    },
}


def test_grid_overrides_and_shared_variants(tmp_path):
    grid = load_grid(write_grid(tmp_path / "g.yaml", GOOD))
    assert grid.variants["b"].overrides == (
        "model.align=srm",
        'model.align_options={"kernel_size": 5}',
    )
    assert grid.variants_of(["u", "t"]) == ["b", "a"]  # each once


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: g["tables"]["t"].update(variants=["a", "zz"]), "unknown variant 'zz'"),
        (lambda g: g["tables"]["t"].update(baseline="b2"), "baseline: 'b2' is not one of"),
        (lambda g: g["variants"].update({"Bad-Name": {"set": {}}}), "name 'Bad-Name'"),
        (lambda g: g["variants"]["a"].update(sett={}), "unknown keys ['sett']"),
        (lambda g: g["tables"]["t"].update(variants=["a", "a"]), "listed twice"),
        (lambda g: g.update(extra=1), "unknown top-level keys ['extra']"),
    ],
)
def test_grid_errors_name_the_file_and_key(tmp_path, change, message):
    bad = json.loads(json.dumps(GOOD))
    change(bad)
    path = write_grid(tmp_path / "bad.yaml", bad)
    with pytest.raises(UserError) as e:
        load_grid(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_plan_resolves_the_base_config_and_orders_overrides():
    plan = make_plan(suite())
    assert plan.variants == ("bilinear_none", "srm_none", "bilinear_crm", "srm_crm", "srm_crm_ce")
    assert plan.data_root == "data/smoke" and plan.synthetic["n_train"] == 16
    over = plan.overrides("srm_crm_ce", 1)
    assert (
        over[-1] == "seed=1"
        and over[-2] == "model.pretrained=results/smoke/pretrain/checkpoints/final.pth"
    )
    assert over[-3] == "train.loss.contrastive.weight=0.0"
    assert over.index("data.root=data/smoke") < over.index(
        "model.align=srm"
    )  # suite first, then variant
    assert plan.runs()[:2] == [("bilinear_none", 0), ("bilinear_none", 1)]


def test_plan_rejects_a_variant_invalid_on_the_base_config(tmp_path):
    grid = json.loads(json.dumps(GOOD))
    grid["variants"]["a"]["set"] = {"model.align": "nosuch"}
    path = write_grid(tmp_path / "g.yaml", grid)
    with pytest.raises(UserError) as e:
        make_plan(suite(grid=str(path), tables=["t"]))
    assert "variant 'a'" in str(e.value) and "nosuch" in str(e.value)
    with pytest.raises(UserError, match="a seed is listed twice"):
        make_plan(suite(seeds=[0, 0]))


PRETRAIN = {
    "variant": "bilinear_none",
    "seed": 100,
    "data_root": "data/smoke_pretrain",
    "synthetic": {"n_train": 8, "seed": 7},
    "set": ["train.iterations=5", "train.freeze_backbone=false"],
}
RES = {"threads": 2, "mem_mb": 1000, "runtime": 5, "gpu": 0}


def test_plan_pretrain_runs_on_its_own_split_and_every_run_fine_tunes_from_it():
    cfg = suite(pretrain=PRETRAIN)
    cfg["resources"] = {**cfg["resources"], "pretrain": RES}
    plan = make_plan(cfg)
    assert plan.pretrained == "results/smoke/pretrain/checkpoints/final.pth"
    assert f"model.pretrained={plan.pretrained}" in plan.overrides("srm_crm", 0)
    pre = plan.pretrain
    assert pre.synthetic == {"n_train": 8, "n_val": 4, "size": [64, 128], "seed": 7}
    assert pre.overrides[-1] == "seed=100" and "train.iterations=5" in pre.overrides
    # its own data root and split come after the suite's (which point at the evaluated set)
    assert pre.overrides.index("data.root=data/smoke_pretrain") > pre.overrides.index(
        "data.root=data/smoke"
    )
    assert not any(o.startswith("model.pretrained") for o in pre.overrides)
    scratch = make_plan(suite(pretrain=None))
    assert scratch.pretrained is None
    assert not any(o.startswith("model.pretrained") for o in scratch.overrides("srm_crm", 0))


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda c: c["pretrain"].update(synthetic={"seed": 0}),
            "must not see the validation images",
        ),
        (
            lambda c: c["pretrain"].update(variant="nosuch"),
            "pretrain.variant: unknown variant 'nosuch'",
        ),
        (lambda c: c["resources"].pop("pretrain"), "resources.pretrain is required"),
        (lambda c: c["pretrain"].update(set=["train.iterations=0"]), "suite config: pretrain: "),
        (
            lambda c: c["pretrain"].update(set=["train.freeze_backbone=true"]),
            "add train.freeze_backbone=false",
        ),
    ],
)
def test_plan_pretrain_errors(change, message):
    cfg = suite(pretrain=json.loads(json.dumps(PRETRAIN)))
    cfg["resources"] = {**cfg["resources"], "pretrain": RES}
    change(cfg)
    with pytest.raises(UserError, match=message):
        make_plan(cfg)


def test_grid_control_table_pairs_twins(tmp_path):
    grid = json.loads(json.dumps(GOOD))
    grid["variants"]["c"] = {"set": {"model.align": "bilinear", "model.coarse_shift": 0.5}}
    grid["tables"]["ctl"] = {"title": "control", "twins": {"c": "a"}}
    g = load_grid(write_grid(tmp_path / "g.yaml", grid))
    assert g.tables["ctl"].twins == (("c", "a"),) and g.tables["ctl"].baseline is None
    assert g.variants_of(["ctl"]) == ["c", "a"]
    grid["tables"]["ctl"]["twins"] = {"c": "zz"}
    with pytest.raises(UserError, match="ctl.twins: unknown variant 'zz'"):
        load_grid(write_grid(tmp_path / "g.yaml", grid))
    grid["tables"]["ctl"] = {"twins": {"c": "a"}, "baseline": "a"}
    with pytest.raises(UserError, match="a control table has title and twins"):
        load_grid(write_grid(tmp_path / "g.yaml", grid))


# --- runs.csv and tables from a fabricated results tree ---------------------------------------


def test_aggregate_rows_equal_the_inputs(tmp_path, capsys):
    results = tmp_path / "results" / "x"
    fabricate(results, {("a", 0): 70.0, ("a", 1): 72.0, ("b", 0): 71.0, ("b", 1): 75.0})
    runs = tmp_path / "runs.csv"
    assert (
        main(
            [
                "aggregate",
                "--results",
                str(results),
                "--variants",
                "a,b",
                "--seeds",
                "0,1",
                "--out",
                str(runs),
            ]
        )
        == 0
    )
    df = pd.read_csv(runs)
    assert list(df["variant"]) == ["a", "a", "b", "b"] and list(df["seed"]) == [0, 1, 0, 1]
    assert list(df["mIoU"]) == [70.0, 72.0, 71.0, 75.0]
    assert list(df["band_mIoU@4"]) == [60.0, 62.0, 61.0, 65.0]
    assert df["gflops"].tolist() == [0.5, 0.5, 0.6, 0.6] and df["params_m"].iloc[
        0
    ] == pytest.approx(0.54)
    assert df["train_time_s"].iloc[0] == 61.5 and "TestCPU x2, 1 thread" in df["machine"].iloc[0]


def test_aggregate_names_the_missing_file(tmp_path, capsys):
    results = tmp_path / "r"
    fabricate(results, {("a", 0): 70.0})
    (results / "a" / "seed0" / "summary.json").unlink()
    rc = main(
        [
            "aggregate",
            "--results",
            str(results),
            "--variants",
            "a",
            "--seeds",
            "0",
            "--out",
            str(tmp_path / "runs.csv"),
        ]
    )
    assert rc == 2
    assert str(results / "a" / "seed0" / "summary.json") in capsys.readouterr().err
    assert not (tmp_path / "runs.csv").exists()


def test_cost_counts_runs_iterations_and_training_flops(tmp_path, capsys):
    out = tmp_path / "cost.json"
    smoke = tmp_path / "suite_smoke.yaml"
    smoke.write_text(yaml.safe_dump({**suite(), "tables": ["loss"]}))
    assert main(["cost", "--suite", str(smoke), "--json", str(out), "--threads", "1"]) == 0
    cost = json.loads(out.read_text())["suites"][0]
    assert cost["runs"] == 4 and [r["variant"] for r in cost["variants"]] == [
        "srm_crm_ce",
        "srm_crm",
    ]
    a, b = cost["variants"]
    assert (
        a["forward_gflops_per_image"] == b["forward_gflops_per_image"] > 0
    )  # same model, other loss
    assert a["iterations"] == 12 and a["batch"] == 4 and a["crop"] == "64x64"
    per_run = 3 * a["forward_gflops_per_image"] * 1e9 * 12 * 4 / 1e15
    assert a["train_pflops_per_run"] == pytest.approx(per_run)
    assert cost["total_train_pflops"] == pytest.approx(
        2 * (a["train_pflops_per_run"] + b["train_pflops_per_run"])
    )
    assert "4 runs, 48 iterations" in capsys.readouterr().out


def test_plan_seed_group_splits_each_runs_overrides_exactly():
    cfg = suite(pretrain=PRETRAIN, group_by_seed=True)
    cfg["resources"] = {**cfg["resources"], "pretrain": RES}
    plan = make_plan(cfg)
    assert plan.group_by_seed
    shared, runs = plan.seed_group(1)
    assert [v for v, _ in runs] == list(plan.variants)
    for v, own in runs:
        assert shared + own == plan.overrides(v, 1)
    assert "data.root=data/smoke" in shared and all(
        "model.align=" in " ".join(own) for _, own in runs
    )


def test_plan_group_by_seed_refuses_runs_that_cannot_share_one_data_stream(tmp_path):
    grid = json.loads(json.dumps(GOOD))
    grid["variants"]["b"]["set"] = {**grid["variants"]["b"]["set"], "train.batch_size": 2}
    path = write_grid(tmp_path / "g.yaml", grid)
    with pytest.raises(
        UserError,
        match=r"group_by_seed: variant 'b' cannot train in one process with 'a'.*train\.batch_size",
    ):
        make_plan(suite(grid=str(path), tables=["t"], group_by_seed=True, pretrain=None))
    make_plan(
        suite(grid=str(path), tables=["t"], group_by_seed=False, pretrain=None)
    )  # one job per run: fine
    cfg = suite(group_by_seed=True)
    cfg["resources"] = {**cfg["resources"], "train": {**RES, "gpu": 2}}
    with pytest.raises(UserError, match="cannot run under torchrun"):
        make_plan(cfg)
