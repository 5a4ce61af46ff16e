"""`srcr report` on a small fabricated results tree (tests/report_fixtures.py): table values,
interval methods and significance, offset correctness on hand-built fields, figures, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_fixtures import N_IMAGES, make_tree

from srcr.errors import UserError
from srcr.metrics import load_per_image
from srcr.metrics.summary import summarize
from srcr.report.cli import make_report
from srcr.report.load import load_grid, load_suite
from srcr.report.offsets import correctness
from srcr.report.outputs import expected_outputs
from srcr.report.stats import HIER, IMAGES, POOLED, Statistics, make_layout

REPO = Path(__file__).resolve().parents[1]


def _stats(tmp_path, seeds, n_boot=100):
    results, grid_path = make_tree(tmp_path, seeds=seeds)
    suite = load_suite(results, load_grid(grid_path))
    return Statistics(suite, make_layout(suite, 4), n_boot, seed=0, progress=False)


@pytest.mark.parametrize(
    "seeds,method", [((0, 1, 2, 3, 4), HIER), ((0, 1), POOLED), ((0,), IMAGES)]
)
def test_interval_covers_planted_difference_and_zero_difference_is_not_significant(
    tmp_path, seeds, method
):
    st = _stats(tmp_path, seeds)
    i = st.layout.index("mIoU")
    d = st.diff("better", "base")  # 10% against 30% of pixels wrong: a large planted gain
    planted = np.mean([st.point("better", s)[i] - st.point("base", s)[i] for s in seeds])
    assert d.method == method and d.n_seeds == len(seeds)
    assert d.point[i] == pytest.approx(planted) and planted > 10
    assert d.lo[i] <= planted <= d.hi[i] and d.lo[i] > 0 and d.significant[i]
    z = st.diff("same", "base")  # identical predictions: a difference of exactly zero
    assert z.point[i] == 0 and z.lo[i] <= 0 <= z.hi[i] and not z.significant[i]


def test_resamples_are_deterministic_and_paired(tmp_path):
    st = _stats(tmp_path, (0, 1), n_boot=100)
    a = st.resampled("base", (0, 1), IMAGES)
    b = Statistics(st.suite, st.layout, 100, seed=0, progress=False).resampled(
        "base", (0, 1), IMAGES
    )
    assert np.array_equal(a, b, equal_nan=True)
    # "same" has the baseline's predictions: on every paired resample the difference is zero
    assert np.nanmax(np.abs(st.resampled("same", (0, 1), IMAGES) - a)) == 0


def test_table_values_equal_the_inputs(tmp_path):
    results, grid = make_tree(tmp_path, seeds=(0, 1))
    out = tmp_path / "reports"
    make_report([results], grid, out, n_boot=100, progress=False, offset_images=2, figures=False)
    df = pd.read_csv(out / "synthetic" / "tables" / "main.csv")
    for _, row in df.iterrows():
        per_seed = []
        for s in (0, 1):
            m = json.loads(
                (results / row["variant"] / f"seed{s}" / "eval" / "metrics.json").read_text()
            )["metrics"]
            st = load_per_image(results / row["variant"] / f"seed{s}" / "eval" / "per_image.npz")
            again = summarize(st["counts"], st["config"])
            assert again["mIoU"] == pytest.approx(m["mIoU"])
            per_seed.append([m["mIoU"], m["mBF@3"], m["trimap"]["4"]["band_mIoU"]])
        per_seed = np.array(per_seed)
        assert row["mIoU_mean"] == pytest.approx(per_seed[:, 0].mean(), rel=1e-5)
        assert row["mIoU_sd"] == pytest.approx(per_seed[:, 0].std(ddof=1), rel=1e-4, abs=1e-6)
        assert row["mBF@3_mean"] == pytest.approx(per_seed[:, 1].mean(), rel=1e-5)
        assert row["band_mIoU@4_mean"] == pytest.approx(per_seed[:, 2].mean(), rel=1e-5)
        assert row["n_images"] == N_IMAGES and row["n_seeds"] == 2
    assert df.set_index("variant").loc["same", "d_mIoU_significant"] == False  # noqa: E712
    assert df.set_index("variant").loc["better", "d_mIoU_significant"] == True  # noqa: E712
    md = (out / "synthetic" / "tables" / "main.md").read_text()
    assert "n.s." in md and "pooled seed variance" in md and "Smallest detectable difference" in md
    assert "TestCPU" in md and "not recorded" in md  # one seed has summary.json, one does not
    assert "reported" not in md  # never a paper column for synthetic
    tex = (out / "synthetic" / "tables" / "main.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex
    align = (out / "synthetic" / "tables" / "align.md").read_text()
    assert "offset corr. s4 (zero)" in align


def test_figures_and_reports_are_written_and_non_empty(tmp_path):
    results, grid = make_tree(tmp_path, seeds=(0,))
    out = tmp_path / "reports"
    written = make_report([results], grid, out, n_boot=100, progress=False, offset_images=2)
    assert all(p.stat().st_size > 0 for p in written)
    figs = out / "synthetic" / "figures"
    for name in (
        "mIoU_vs_gflops",
        "trimap_curves",
        "band_vs_interior",
        "per_class_iou",
        "per_class_bf",
        "error_share_curves",
        "class_error_shares",
        "class_changes_main",
        "class_changes_align",
        "offset_correctness",
        "offsets/offs_0",
        "offsets/offs_1",
    ):
        for ext in ("png", "pdf"):
            assert (figs / f"{name}.{ext}").stat().st_size > 1000, name
    for name in (
        "report.md",
        "errors.md",
        "tables/offset_correctness.csv",
        "tables/class_changes.csv",
        "tables/class_error_shares.csv",
    ):
        assert (out / "synthetic" / name).stat().st_size > 0
    assert (
        "![error share curves](figures/error_share_curves.png)"
        in (out / "synthetic" / "errors.md").read_text()
    )
    assert "does NOT cover training noise" in (out / "synthetic" / "tables" / "main.md").read_text()
    assert not (out / "index.md").exists()  # one suite: its report.md is the front page
    # the list a workflow rule declares is exactly what was written
    expected = expected_outputs(grid, ["synthetic"], offset_images=2)
    assert sorted(expected) == sorted(str(p.relative_to(out)) for p in written)

    # in two processes (bootstrap and offset figures): the same files, the same pixels
    two = tmp_path / "reports2"
    written2 = make_report(
        [results], grid, two, n_boot=100, progress=False, offset_images=2, workers=2
    )
    assert [p.relative_to(two) for p in written2] == [p.relative_to(out) for p in written]
    for p in written:
        q = two / p.relative_to(out)
        if p.suffix == ".png":
            assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(q))), p
        elif p.suffix in (".md", ".csv", ".tex"):
            assert p.read_text() == q.read_text(), p


def test_expected_outputs_of_the_default_grid():
    grid = Path(__file__).resolve().parents[1] / "ablations" / "grid.yaml"
    out = expected_outputs(grid, ["synthetic"])
    assert (
        "synthetic/tables/components.tex" in out
        and "synthetic/figures/offsets/fam_crm_1.pdf" in out
    )
    assert not any("offsets/bilinear" in p for p in out) and not any(
        p.startswith("cross/") for p in out
    )
    assert "cross/loss.csv" in expected_outputs(grid, ["synthetic", "cityscapes"], tables=["loss"])


def test_cross_dataset_table_has_one_block_per_suite(tmp_path):
    results, grid = make_tree(tmp_path, seeds=(0,))
    other, _ = make_tree(tmp_path / "b", seeds=(0, 1), name="other")
    out = tmp_path / "reports"
    make_report(
        [results, other], grid, out, tables=["main"], n_boot=100, progress=False, figures=False
    )
    cross = (out / "cross" / "main.md").read_text()
    assert "synthetic: mIoU" in cross and "other: Δ mIoU [95% CI]" in cross
    df = pd.read_csv(out / "cross" / "main.csv")
    assert sorted(set(df["suite"])) == ["other", "synthetic"]


def _halves_label(width=64, split=21):
    lab = np.zeros((width, width), np.uint8)
    lab[:, split:] = 1
    return lab


def test_offset_correctness_hand_built_fields():
    lab = _halves_label()
    H = W = 16  # step s4 of a 64 x 64 label
    # every fine pixel pushed 3 fine pixels deeper into its own side: it samples its own class
    own = np.zeros((H, W), np.int64)
    own[:, 5:] = 1  # fine cell 5 covers label columns 20..23: three of them class 1
    field = np.zeros((2, H, W), np.float32)
    field[0] = np.where(own == 0, -3.0, 3.0)
    learned, zero, n = correctness(field, lab, 4, True, 2, width=1)
    assert n > 0 and learned == pytest.approx(100.0)
    assert (
        zero < 100.0
    )  # bilinear reads the mixed coarse cell 2 (five class-0 columns) for class-1 pixels
    # zero offsets score exactly the zero-offset share
    learned0, zero0, _ = correctness(np.zeros_like(field), lab, 4, True, 2, width=1)
    assert learned0 == zero0 == zero


def test_bad_input_names_the_file_or_key(tmp_path):
    results, grid = make_tree(tmp_path, seeds=(0,))
    out = tmp_path / "reports"
    with pytest.raises(UserError, match="unknown table.*nope"):
        make_report([results], grid, out, tables=["nope"], n_boot=100, progress=False)
    (results / "better" / "seed0" / "eval" / "metrics.json").unlink()
    with pytest.raises(UserError, match=r"better/seed0/eval/metrics\.json"):
        make_report([results], grid, out, tables=["main"], n_boot=100, progress=False)
    shutil.rmtree(results / "better")
    with pytest.raises(UserError, match="variant 'better' of table 'main'"):
        make_report([results], grid, out, tables=["main"], n_boot=100, progress=False)
    (results / "flops" / "offs.json").unlink()
    with pytest.raises(UserError, match=r"flops/offs\.json"):
        make_report([results], grid, out, tables=["align"], n_boot=100, progress=False)
    with pytest.raises(UserError, match="results directory not found"):
        make_report([tmp_path / "missing"], grid, out, n_boot=100, progress=False)
    assert not out.exists()  # nothing written before the checks


def test_control_table_detects_the_handicap_and_measures_recovery(tmp_path):
    import yaml

    results, grid = make_tree(tmp_path, seeds=(0, 1))
    g = yaml.safe_load(grid.read_text())
    # "base" (30% of pixels wrong) and "offs" (20%) as handicapped twins of "better" (10%); "same"
    # has exactly base's predictions, so it recovers nothing of the reference loss
    g["tables"]["controls"] = {
        "title": "Control",
        "twins": {"base": "better", "same": "better", "offs": "better"},
    }
    grid.write_text(yaml.safe_dump(g))
    out = tmp_path / "reports"
    make_report([results], grid, out, n_boot=100, progress=False, figures=False)
    df = pd.read_csv(out / "synthetic" / "tables" / "controls.csv").set_index("handicapped")
    ref = df.loc["base", "d_mIoU"]
    assert ref < -10 and df.loc["base", "d_mIoU_significant"] and df.loc["base", "d_mIoU_hi"] < 0
    assert df.loc["same", "recovered_pct"] == pytest.approx(0.0, abs=1e-9)
    assert 0 < df.loc["offs", "recovered_pct"] < 100
    assert df.loc["offs", "recovered_pct"] == pytest.approx(
        100 * (1 - df.loc["offs", "d_mIoU"] / ref)
    )
    md = (out / "synthetic" / "tables" / "controls.md").read_text()
    assert "reference" in md and "A control, not a paper table" in md
    rels = expected_outputs(grid, ["synthetic", "other"])
    assert "synthetic/tables/controls.csv" in rels
    assert not any("class_changes_controls" in r or r.startswith("cross/controls") for r in rels)


def test_prefetch_in_processes_gives_the_same_resamples(tmp_path):
    st = _stats(tmp_path, (0, 1))
    par = Statistics(st.suite, st.layout, 100, seed=0, progress=False)
    par.prefetch(2)
    for v in st.suite.runs:
        key = (v, (0, 1), IMAGES)
        assert key in par._cache
        assert np.array_equal(par._cache[key], st.resampled(v, (0, 1), IMAGES), equal_nan=True)


def test_context_tables_state_the_map_size_the_context_modules_saw():
    from srcr.config import load_config
    from srcr.report.tables import context_maps

    cfg = load_config(REPO / "config" / "default.yaml")
    assert context_maps(cfg) == (
        "Context modules: they see the stride-32 map, 4x4 cells in training (128x128 "
        "crops) and 4x8 at evaluation (128x256 images)."
    )
    bigger = load_config(
        REPO / "config" / "default.yaml",
        ["data.train_pipeline.crop_size=[256, 256]", "eval.scale=[256, 512]"],
    )
    assert "8x8 cells in training" in context_maps(bigger) and "8x16 at evaluation" in context_maps(
        bigger
    )
    city = load_config(REPO / "config" / "cityscapes_mscan_s.yaml")
    assert "at evaluation" in context_maps(city)
    assert (
        context_maps({"model": {"context": "crm"}}) is None
    )  # a config that does not say: no note


def test_paper_column_tables_name_the_evaluation_mode_and_show_a_second_ms_flip_evaluation(
    tmp_path,
):
    from srcr.report.paper import eval_mode
    from srcr.report.tables import build_table, cross_table

    assert eval_mode({"scales": [1.0], "flip": False}) == "ss"
    assert eval_mode({"scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "flip": True}) == "ms+flip"
    assert eval_mode({"scales": [0.75, 1.0], "flip": True}) == "scales 0.75,1 + flip"
    assert eval_mode({}) == "ss"  # records written before the key existed: single-scale
    results, grid_path = make_tree(tmp_path, seeds=(0,))
    ms = {}
    for run in sorted(results.glob("*/seed0")):
        path = run / "eval" / "metrics.json"
        rec = json.loads(path.read_text())
        rec["dataset"]["name"] = "cityscapes"
        rec["inference"] = {"scales": [1.0], "flip": False}
        if run.parent.name == "better":  # the full model: SRM + CRM with the contrastive term
            rec["config"]["model"].update(align="srm", context="crm")
            ms_rec = {
                **rec,
                "metrics": {**rec["metrics"], "mIoU": rec["metrics"]["mIoU"] + 1.25},
                "inference": {"scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "flip": True},
            }
            (run / "eval_ms_flip").mkdir()
            (run / "eval_ms_flip" / "metrics.json").write_text(json.dumps(ms_rec))
            ms["better"] = ms_rec["metrics"]["mIoU"]
        path.write_text(json.dumps(rec))
    suite = load_suite(results, load_grid(grid_path))
    st = Statistics(suite, make_layout(suite, 4), 100, seed=0, progress=False)
    spec = {"title": "t", "baseline": "base", "variants": ["base", "better"]}
    t = build_table(st, "main", spec, {})
    shown = t.shown.set_index("variant")
    assert list(shown["eval"]) == ["ss", "ss"]
    assert (
        shown.loc["better", "mIoU (ms+flip)"] == f"{ms['better']:.2f}"
        and shown.loc["base", "mIoU (ms+flip)"] == "–"
    )
    assert shown.loc["better", "reported mIoU (paper)"] == "84.5"
    notes = " ".join(t.notes)
    assert "82.5" in notes and "81.3 ss and 82.7 ms+flip" in notes and "beside both" in notes
    assert "Evaluation of mIoU and the other measured columns: ss" in notes
    cross = cross_table("x", "x", [t])
    assert (
        "synthetic: mIoU (ss)" in cross.shown.columns
    )  # the suite (directory) name heads the block
    # a second evaluation of another checkpoint, or in another mode, is refused
    bad = results / "better" / "seed0" / "eval_ms_flip" / "metrics.json"
    good = bad.read_text()
    bad.write_text(json.dumps({**json.loads(good), "checkpoint": {"sha256": "other"}}))
    with pytest.raises(
        UserError, match=r"eval_ms_flip/metrics\.json: evaluates another checkpoint"
    ):
        build_table(st, "main", spec, {})
    bad.write_text(json.dumps({**json.loads(good), "inference": {"scales": [1.0], "flip": True}}))
    with pytest.raises(UserError, match=r"is a scales 1 \+ flip evaluation, expected ms\+flip"):
        build_table(st, "main", spec, {})
    # a suite without paper numbers (the synthetic one) keeps its tables as they were
    plain = build_table(_stats(tmp_path / "plain", (0,)), "main", spec, {})
    assert "eval" not in plain.shown.columns and "eval_mode" not in plain.csv.columns
    assert not any("Evaluation of mIoU" in n for n in plain.notes)
