"""The real-data path end to end: the Cityscapes suite config (sizes, iterations and resources
overridden) through the whole DAG on a tiny fixture in Cityscapes' real on-disk layout, with the
model kept as the config has it apart from the backbone's width."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from dataset_fixtures import make_cityscapes, make_folder
from workflow_helpers import REPO, run_snakemake, workflow_copy

pytestmark = pytest.mark.slow  # whole Snakemake suites end to end (`pytest -m "not slow"` skips)

pytest.importorskip("snakemake")

CPU = {"threads": 1, "mem_mb": 2000, "runtime": 10, "gpu": 0}
TINY = [
    "model.backbone_options={embed_dims: [8, 16, 16, 16], depths: [1, 1, 1, 1]}",
    "model.fpn_dim=8",
    "model.embed_dim=8",
    "data.num_workers=0",
    "train.iterations=2",
    "train.batch_size=2",
    "train.schedule.warmup_iters=1",
    "train.loss.contrastive={warmup: 0, max_samples: 64, max_views: 8}",
]


def test_cityscapes_suite_runs_end_to_end_on_a_fixture(tmp_path):
    wf = workflow_copy(tmp_path / "wf")
    root = make_cityscapes(tmp_path / "cityscapes", n_per_split=2, size=(64, 128))
    cfg = yaml.safe_load((REPO / "config" / "suite_cityscapes.yaml").read_text())
    cfg.update(
        tables=["loss"],
        data_root=str(root),
        flops_size=[64, 128],
        resources={"train": CPU, "evaluate": CPU, "flops": CPU},
        set=[
            "model.backbone_options={embed_dims: [8, 16, 16, 16], depths: [1, 1, 1, 1]}",
            "model.fpn_dim=8",
            "model.embed_dim=8",
            "data.num_workers=0",
            "data.train_pipeline.scale=[64, 128]",
            "data.train_pipeline.crop_size=[32, 32]",
            "train.iterations=2",
            "train.batch_size=2",
            "train.schedule.warmup_iters=1",
            "train.loss.contrastive={warmup: 0, max_samples: 64, max_views: 8}",
            "eval.mode=whole",
            "eval.num_vis=1",
            "eval.offset_images=1",
        ],
    )
    suite = tmp_path / "cs.yaml"
    suite.write_text(yaml.safe_dump(cfg))
    res = run_snakemake(wf, "--cores", "2", "--configfile", str(suite))
    assert "synth" not in res.stdout  # real data is never generated
    runs = pd.read_csv(wf / "results" / "cityscapes" / "runs.csv")
    assert sorted(runs["variant"]) == ["srm_crm", "srm_crm_ce"] and set(runs["dataset"]) == {
        "cityscapes"
    }
    assert (runs["num_images"] == 2).all() and runs["mIoU"].between(0, 100).all()
    table = (wf / "reports" / "cityscapes" / "tables" / "loss.md").read_text()
    assert "srm_crm_ce" in table and "baseline" in table and "seeds per variant: 1" in table
    assert "does NOT cover training noise" in table  # one seed: image bootstrap only


def test_folder_suite_runs_end_to_end_on_images_of_two_sizes(tmp_path):
    # a dataset of your own: classes from classes.yaml, a label_map, JPEGs of two sizes, so the
    # offsets of the two evaluated images differ in size (the report draws both)
    wf = workflow_copy(tmp_path / "wf")
    root = make_folder(tmp_path / "mine", n_per_split=1)
    cfg = yaml.safe_load((REPO / "config" / "suite_folder.yaml").read_text())
    cfg.update(
        tables=["loss"],
        data_root=str(root),
        resources={"train": CPU, "evaluate": CPU, "flops": CPU},
        set=TINY
        + [
            "data.train_pipeline.scale=[48, 64]",
            "data.train_pipeline.crop_size=[32, 32]",
            "eval.mode=slide",
            "eval.crop_size=[32, 32]",
            "eval.stride=[24, 24]",
            "eval.num_vis=1",
            "eval.offset_images=2",
        ],
    )
    suite = tmp_path / "mine.yaml"
    suite.write_text(yaml.safe_dump(cfg))
    run_snakemake(wf, "--cores", "2", "--configfile", str(suite))
    runs = pd.read_csv(wf / "results" / "folder" / "runs.csv")
    assert sorted(runs["variant"]) == ["srm_crm", "srm_crm_ce"] and set(runs["dataset"]) == {
        "folder"
    }
    assert (runs["num_images"] == 2).all() and runs["mIoU"].between(0, 100).all()
    assert "srm_crm_ce" in (wf / "reports" / "folder" / "tables" / "loss.md").read_text()
    figures = wf / "reports" / "folder" / "figures" / "offsets"
    assert (figures / "srm_crm_0.png").is_file() and (figures / "srm_crm_1.png").is_file()
