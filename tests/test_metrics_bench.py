"""`srcr bench metrics` on a small size: runs, checks the two scorers agree, writes its JSON."""

import json

import numpy as np

from srcr.bench.metrics import gscnn_style_counts, synthetic_pair
from srcr.cli import main
from srcr.metrics import SegEvaluator


def test_bench_metrics_small(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "metrics",
            "--images",
            "1",
            "--size",
            "48",
            "96",
            "--classes",
            "6",
            "--baseline",
            "opencv,scipy",
            "--threads",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "boundary counts agree exactly" in text and "speed-up" in text
    res = json.loads(out.read_text())
    assert res["counts_agree"] and res["boundary_pixels_checked"] > 0
    assert set(res["wall_ms"]) == {"full", "bf_only", "gscnn_style_scipy", "gscnn_style_opencv"}


def test_gscnn_style_scorer_agrees_on_a_synthetic_pair():
    pred, lab = synthetic_pair(np.random.default_rng(0), 96, 160, 8)
    assert (lab == 255).any() and (pred != lab).any()
    ev = SegEvaluator(8, bf_tolerances=(1, 2, 4))
    ev.update(pred, lab)
    ref = gscnn_style_counts(pred, lab, 8, (1, 2, 4), "opencv")
    for k, v in ref.items():
        assert np.array_equal(v, ev.per_image[k][0]), k


def test_bench_rejects_bad_arguments(capsys):
    assert main(["bench", "metrics", "--images", "0"]) == 2
    assert "--images" in capsys.readouterr().err
    assert main(["bench", "metrics", "--baseline", "numba"]) == 2
