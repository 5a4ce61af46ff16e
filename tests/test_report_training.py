"""`srcr report`'s offset geometry, training curves and confusion matrices, and its refusal of
unreadable run files (issue 21)."""

from __future__ import annotations

import numpy as np
import pytest
from report_fixtures import log_records, make_tree

from srcr.errors import UserError
from srcr.report.cli import make_report
from srcr.report.confusion import pooled, row_normalised
from srcr.report.load import load_grid, load_suite
from srcr.report.offsets import outside_map, run_geometry
from srcr.report.training_curves import (
    curve_frame,
    curve_summary,
    draw_curves,
    terms_of,
)


def test_known_offset_field_gives_the_known_outside_share():
    H, W = 4, 8
    field = np.zeros((2, H, W), np.float32)
    field[0] = 2.0  # columns 6 and 7 land beyond x = W - 1 = 7; column 5 lands exactly on it
    assert outside_map(field).mean() == pytest.approx(2 / 8)
    assert not outside_map(field)[:, 5].any()
    field[1, 0] = -0.5  # row 0 goes above y = 0: 8 more points, 2 of them already outside
    assert outside_map(field).mean() == pytest.approx((2 * 4 + 6) / 32)
    assert not outside_map(np.zeros((2, H, W))).any()
    # a field 16 px long everywhere on an 8-row map: every point leaves it, 200% of the short side
    assert outside_map(np.full((2, 8, 16), 16.0)).all()


def test_run_geometry_pools_lengths_and_outside_share(tmp_path):
    path = tmp_path / "offsets.npz"
    refined = np.zeros((2, 2, 4, 8), np.float32)
    refined[:, 0] = 3.0  # length 3 everywhere; columns 5-7 outside
    refined[1, 1] = 4.0  # second image: length 5, and every row from 0 on pushed below row 3
    arrays = {
        "image_ids": np.array(["a", "b"]),
        "s8_refined": refined,
        "s8_initial": np.full((2, 2, 4, 8), 100.0, np.float32),
    }
    np.savez(path, **arrays)
    g = run_geometry(path)
    assert g[("s8", "refined")]["median_px"] == pytest.approx(4.0)  # half 3, half 5
    assert g[("s8", "refined")]["median_rel"] == pytest.approx(100.0)  # 4 px on a 4-row map
    # image 1: columns 5-7 of 8 outside; image 2: rows 0-3 all go to y >= 4 > 3
    assert g[("s8", "refined")]["outside"] == pytest.approx(100 * (12 + 32) / 64)
    assert np.isnan(g[("s8", "initial")]["outside"])  # never sampled with


def test_curve_figure_data_equal_the_logged_values(tmp_path):
    results, grid_path = make_tree(tmp_path, seeds=(0, 1), variants=["base", "better", "same"])
    grid = load_grid(grid_path, ["main"])
    suite = load_suite(results, grid)
    variants = ["base", "better", "same"]
    frame = curve_frame(suite, variants)
    summary = curve_summary(frame)
    terms, left_out = terms_of(frame)
    assert terms == ["loss", "ce", "aux", "contrast", "lr"] and left_out == []
    assert terms_of(frame.assign(value=frame["value"].where(frame["term"] != "aux", 0.0)))[1] == [
        "aux"
    ]
    fig = draw_curves(summary, variants, terms, "t")
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}
    for v in variants:
        logs = [log_records(v, s) for s in (0, 1)]
        its = [r["iteration"] for r in logs[0]]
        for term in terms:
            vals = np.array([[r[term] for r in log] for log in logs])
            line = lines[f"{v}/{term}"]
            np.testing.assert_array_equal(line.get_xdata(), its)
            np.testing.assert_allclose(line.get_ydata(), vals.mean(0), rtol=1e-12)
            d = summary[(summary["variant"] == v) & (summary["term"] == term)]
            np.testing.assert_allclose(d["low"], vals.min(0), rtol=1e-12)
            np.testing.assert_allclose(d["high"], vals.max(0), rtol=1e-12)
    # the ce of "better" and "base" differ by the planted 0.1 at every iteration
    assert np.allclose(lines["better/ce"].get_ydata() - lines["base/ce"].get_ydata(), 0.1)


def test_confusion_rows_normalise_and_pool_seeds(tmp_path):
    conf = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    got = row_normalised(conf)
    np.testing.assert_allclose(got[0], [75, 25, 0])
    assert np.isnan(got[1]).all()
    np.testing.assert_allclose(got[2], [25, 25, 50])
    results, grid_path = make_tree(tmp_path, seeds=(0, 1), variants=["base", "better", "same"])
    suite = load_suite(results, load_grid(grid_path, ["main"]))
    runs = suite.runs["better"]
    np.testing.assert_array_equal(pooled(suite, "better"), runs[0].confusion + runs[1].confusion)
    # every non-void pixel once: 16 images of 32 x 32 per seed
    assert pooled(suite, "better").sum() == 2 * 16 * 32 * 32
    # the planted error rates: 10% and 30% of pixels moved off the diagonal
    acc = {v: np.trace(pooled(suite, v)) / pooled(suite, v).sum() for v in ("better", "base")}
    assert acc["better"] == pytest.approx(0.9, abs=0.01) and acc["base"] == pytest.approx(
        0.7, abs=0.01
    )


def _garble(path):
    path.write_bytes(b"PK\x03\x04 truncated")


def _bad_line(path):
    path.write_text(path.read_text() + "{not json\n")


@pytest.mark.parametrize(
    "rel, spoil",
    [
        ("eval/per_image.npz", lambda p: p.unlink()),
        ("eval/per_image.npz", _garble),
        ("eval/metrics.json", lambda p: p.unlink()),
        ("eval/metrics.json", lambda p: p.write_text('{"metrics": ')),
        ("log.jsonl", lambda p: p.unlink()),
        ("log.jsonl", _bad_line),
        ("log.jsonl", lambda p: p.write_text("")),
    ],
)
def test_an_unreadable_run_file_is_named_and_nothing_is_written(tmp_path, rel, spoil):
    results, grid = make_tree(tmp_path, seeds=(0, 1), variants=["base", "better", "same"])
    path = results / "same" / "seed1" / rel
    spoil(path)
    out = tmp_path / "reports"
    with pytest.raises(UserError) as e:
        make_report([results], grid, out, tables=["main"], n_boot=20, progress=False)
    assert str(path) in str(e.value)
    assert not out.exists()
