"""Several runs in one `srcr train` process (`--run`): one data stream and, on a frozen equal
backbone, one backbone forward per batch (srcr.models.feature_cache). Each run must end with
exactly the weights and log of the same run trained alone, including when one resumes midway;
runs that would see different batches are refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from train_helpers import assert_same_state, final_state, log_values, tiny_cfg, write_cfg

from srcr.engine.checkpoint import list_checkpoints
from srcr.errors import UserError
from srcr.models.feature_cache import FeatureCache, share_backbone
from srcr.train import train, train_runs

PY = sys.executable

# every alignment and context module at least once, so an in-place change of the shared maps shows
VARIANTS = {
    "bilinear_none": ["model.align=bilinear", "model.context=none"],
    "srm_crm": ["model.align=srm", "model.context=crm"],
    "fam_ppm": ["model.align=fam", "model.context=ppm"],
    "alignfa_dappm_shift": ["model.align=alignfa", "model.context=dappm", "model.coarse_shift=0.5"],
    "srm_dam_ce": ["model.align=srm", "model.context=dam", "train.loss.contrastive.weight=0.0"],
    "srm_ccam": ["model.align=srm", "model.context=ccam"],
    "bilinear_ccam_dran": [
        "model.align=bilinear",
        "model.context=ccam_dran",
        "model.context_options={compact: 2}",
    ],
}


@pytest.fixture(scope="module")
def pretrained(syn_root, tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("pre") / "pre"
    train(tiny_cfg(syn_root, "train.iterations=3", "seed=100"), run, progress=False)
    return run / "checkpoints" / "final.pth"


def fine_tune_cfg(root, pretrained, variant, *more):
    return tiny_cfg(
        root,
        f"model.pretrained={pretrained}",
        "train.freeze_backbone=true",
        *VARIANTS[variant],
        *more,
    )


def test_a_group_on_a_frozen_backbone_ends_exactly_as_its_runs_alone(
    syn_root, pretrained, tmp_path
):
    torch.set_num_threads(1)
    specs = [(fine_tune_cfg(syn_root, pretrained, v), tmp_path / "group" / v) for v in VARIANTS]
    train_runs(specs, progress=False)
    for cfg, out in specs:
        alone = tmp_path / "alone" / out.name
        train(cfg, alone, progress=False)
        assert_same_state(final_state(out), final_state(alone))
        assert log_values(out) == log_values(alone), out.name
        summary = json.loads((out / "summary.json").read_text())
        assert summary["runs_in_process"] == len(VARIANTS) and summary["shared_backbone"] is True
    assert (
        json.loads((tmp_path / "alone" / "srm_crm" / "summary.json").read_text())["shared_backbone"]
        is False
    )


def test_a_group_resumes_each_run_from_its_own_checkpoint(syn_root, pretrained, tmp_path):
    torch.set_num_threads(1)
    cfgs = {
        v: fine_tune_cfg(syn_root, pretrained, v, "train.keep_checkpoints=3")
        for v in ("bilinear_none", "srm_crm", "fam_ppm")
    }
    for v, cfg in cfgs.items():
        train(cfg, tmp_path / "alone" / v, progress=False)
    group = {v: tmp_path / "group" / v for v in cfgs}
    # srm_crm: as if killed after iteration 2; fam_ppm: already complete; bilinear_none: not started
    train(cfgs["srm_crm"], group["srm_crm"], progress=False)
    ckpts = group["srm_crm"] / "checkpoints"
    later = [path for it, path in list_checkpoints(ckpts) if it > 2]
    assert len(later) == 2
    for p in [ckpts / "final.pth", *later]:
        p.unlink()
    train(cfgs["fam_ppm"], group["fam_ppm"], progress=False)
    results = train_runs([(cfgs[v], group[v]) for v in cfgs], progress=False)
    assert [r["status"] for r in results] == ["trained", "trained", "complete"]
    assert results[1]["resumed_from"] == 2
    for v in cfgs:
        assert_same_state(final_state(group[v]), final_state(tmp_path / "alone" / v))
        assert log_values(group[v]) == log_values(tmp_path / "alone" / v), v


def test_an_unfrozen_group_shares_the_data_but_not_the_backbone(syn_root, tmp_path):
    torch.set_num_threads(1)
    specs = [
        (tiny_cfg(syn_root, *VARIANTS[v]), tmp_path / "group" / v)
        for v in ("bilinear_none", "srm_crm")
    ]
    train_runs(specs, progress=False)
    for cfg, out in specs:
        train(cfg, tmp_path / "alone" / out.name, progress=False)
        assert_same_state(final_state(out), final_state(tmp_path / "alone" / out.name))
        assert json.loads((out / "summary.json").read_text())["shared_backbone"] is False


def test_runs_that_would_see_different_batches_are_refused_before_anything_is_written(
    syn_root, tmp_path
):
    a = tiny_cfg(syn_root)
    for more, key in (
        (["seed=1"], "seed"),
        (["train.batch_size=2"], "train.batch_size"),
        (["data.train_pipeline.crop_size=[16, 16]"], "data.train_pipeline.crop_size"),
    ):
        with pytest.raises(
            UserError, match=rf"--run .*b cannot train in one process .*differ in {key}"
        ):
            train_runs(
                [(a, tmp_path / "a"), (tiny_cfg(syn_root, *more), tmp_path / "b")], progress=False
            )
    with pytest.raises(UserError, match="the same run directory is given twice"):
        train_runs([(a, tmp_path / "a"), (a, tmp_path / "x" / ".." / "a")], progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # what does not decide the batches may differ: the loader's workers, the iterations
    train_runs(
        [
            (a, tmp_path / "c"),
            (tiny_cfg(syn_root, "train.iterations=4", "data.num_workers=1"), tmp_path / "d"),
        ],
        progress=False,
    )
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["iterations"] == 4


def test_the_command_line_gives_each_run_its_own_sets(syn_root, tmp_path):
    cfg_path = write_cfg(tmp_path / "base.yaml", tiny_cfg(syn_root))
    cmd = [
        PY,
        "-m",
        "srcr.cli",
        "train",
        "--config",
        str(cfg_path),
        "--set",
        "train.iterations=3",
        "--run",
        str(tmp_path / "a"),
        "--set",
        "model.align=srm",
        "--run",
        str(tmp_path / "b"),
        "--set",
        "model.align=fam",
        "--threads",
        "1",
        "--no-progress",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    import yaml

    saved = {r: yaml.safe_load((tmp_path / r / "config.yaml").read_text()) for r in "ab"}
    assert [saved[r]["model"]["align"] for r in "ab"] == ["srm", "fam"]
    assert all(saved[r]["train"]["iterations"] == 3 for r in "ab")
    both = subprocess.run(
        cmd[:6] + ["--out", str(tmp_path / "c"), "--run", str(tmp_path / "d")],
        capture_output=True,
        text=True,
    )
    assert (
        both.returncode != 0 and "either --out RUN_DIR or one --run RUN_DIR per run" in both.stderr
    )
    bad = subprocess.run(
        cmd[:6] + ["--run", str(tmp_path / "e"), "--set", "model.align=nope"],
        capture_output=True,
        text=True,
    )
    assert (
        bad.returncode != 0
        and f"--run {tmp_path / 'e'}: {cfg_path}: invalid configuration" in bad.stderr
    )
    assert "model.align: 'nope' is not allowed" in bad.stderr


# ----------------------------------------------------------------------------------------------------
# the cache itself


class Doubler(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return [x * self.w, x * 2 * self.w]


def frozen(m):
    return m.requires_grad_(False).eval()


def test_the_cache_reuses_maps_only_of_an_equal_input_to_a_frozen_backbone():
    cache, net = FeatureCache(capacity=2), frozen(Doubler())
    x = torch.randn(2, 3, 4, 4)
    first = cache.extract(net, x)
    again = cache.extract(net, x.clone())  # equal values, another tensor: served
    assert net.calls == 1 and all(torch.equal(a, b) for a, b in zip(first, again))
    cache.extract(net, x + 1)
    cache.extract(net, x.flip(-1))  # capacity 2: x is now out
    cache.extract(net, x)
    assert net.calls == 4 and (cache.hits, cache.misses) == (1, 4)
    again = cache.extract(net, x)
    again[0].add_(1)  # a caller changed a kept map in place: it is not served again
    fresh = cache.extract(net, x)
    assert net.calls == 5 and torch.equal(fresh[0], x)
    net.train()  # no longer frozen (BN statistics would move): never cached
    cache.extract(net, x)
    cache.extract(net, x)
    assert net.calls == 7
    trainable = Doubler().eval()
    cache.extract(trainable, x)
    cache.extract(trainable, x)
    assert trainable.calls == 2
    # equal values in another memory format run other kernels (maps differ in the last bits): not served
    cache, net = FeatureCache(), frozen(Doubler())
    cache.extract(net, x)
    cache.extract(net, x.contiguous(memory_format=torch.channels_last))
    cache.extract(net, x.contiguous(memory_format=torch.channels_last))
    assert net.calls == 2 and (cache.hits, cache.misses) == (1, 2)


def test_share_backbone_needs_frozen_equal_backbones():
    class M(torch.nn.Module):
        def __init__(self, w=1.0):
            super().__init__()
            self.backbone = frozen(Doubler())
            self.backbone.w.data.fill_(w)

    a, b = M(), M()
    assert (
        share_backbone([a, b]) is not None
        and b.backbone is a.backbone
        and a.feature_cache is b.feature_cache
    )
    c, d = M(), M(2.0)
    assert share_backbone([c, d]) is None and d.backbone is not c.backbone
    e, f = M(), M()
    f.backbone.w.requires_grad_(True)
    assert share_backbone([e, f]) is None
