"""`srcr evaluate` and test-time inference: sliding window (known answers), flip, multi-scale,
keep-ratio resize, and the evaluation directory's outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from eval_helpers import save_ckpt, tiny_cfg
from PIL import Image
from train_helpers import TINY_MODEL

from srcr.config import load_config
from srcr.engine.inference import (
    keep_ratio_size,
    pass_sizes,
    predict_probs,
    slide_logits,
    whole_logits,
)
from srcr.errors import UserError
from srcr.evaluate import evaluate, resolve_checkpoint
from srcr.metrics import SegEvaluator, load_per_image

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------
# inference


class XCoord(nn.Module):
    """Logits whose channel 0 is each pixel's x coordinate inside the crop it is given."""

    def forward(self, x):
        b, _, h, w = x.shape
        xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([xs, torch.zeros_like(xs)], 1)


def test_slide_window_positions_and_count_map_known_answer():
    # width 10, crop 6, stride 4: mmseg places windows [0, 6) and [4, 10) (the last flush right)
    img = torch.zeros(1, 3, 5, 10)
    out = slide_logits(XCoord(), img, 2, crop_size=(6, 6), stride=(4, 4))[0, 0, 0]
    expected = torch.tensor([0, 1, 2, 3, (4 + 0) / 2, (5 + 1) / 2, 2, 3, 4, 5], dtype=torch.float32)
    assert torch.allclose(out, expected)


def test_slide_equals_whole_for_pointwise_model_and_when_crop_covers_image():
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 4, 1)
    img = torch.randn(2, 3, 23, 37)  # odd sizes, several overlapping windows
    whole = whole_logits(pointwise, img)
    slide = slide_logits(pointwise, img, 4, crop_size=(10, 16), stride=(7, 9))
    assert torch.allclose(whole, slide, atol=1e-6)
    context = nn.Sequential(
        nn.Conv2d(3, 4, 5, padding=2), nn.AdaptiveAvgPool2d(1)
    )  # depends on the whole crop

    def model(x):
        return context(x).expand(-1, -1, *x.shape[-2:]) + pointwise(x)

    assert torch.equal(whole_logits(model, img), slide_logits(model, img, 4, (23, 40), (16, 16)))
    assert not torch.allclose(
        whole_logits(model, img), slide_logits(model, img, 4, (10, 16), (7, 9))
    )


def test_flip_and_multiscale_average_probabilities():
    torch.manual_seed(0)
    net = nn.Conv2d(3, 3, 3, padding=1)  # not mirror-symmetric
    img = torch.randn(1, 3, 12, 20)
    plain = predict_probs(net, img, (12, 20), 3)
    assert torch.allclose(plain, torch.softmax(net(img), 1))
    flipped = predict_probs(net, img, (12, 20), 3, flip=True)
    ref = (torch.softmax(net(img), 1) + torch.softmax(net(img.flip(-1)).flip(-1), 1)) / 2
    assert torch.allclose(flipped, ref, atol=1e-6)
    assert not torch.allclose(flipped, plain)
    ms = predict_probs(net, img, (12, 20), 3, scales=(0.5, 1.0))
    half = F.interpolate(img, size=(6, 10), mode="bilinear", align_corners=False)
    up = F.interpolate(net(half), size=(12, 20), mode="bilinear", align_corners=False)
    assert torch.allclose(ms, (torch.softmax(up, 1) + torch.softmax(net(img), 1)) / 2, atol=1e-6)
    # output at the label size, whatever the inference size
    assert predict_probs(net, img, (7, 9), 3, scale=(8, 40)).shape == (1, 3, 7, 9)


def test_each_test_scale_resizes_the_original_image_once_as_mmseg_0x():
    # mmseg 0.x MultiScaleFlipAug(img_scale=(2048, 512), img_ratios=[.., 1.5, ..]): scale
    # (3072, 768), keep-ratio from the original 375x500 -> 768x1024 (not 512x683 x 1.5 = 768x1025)
    assert pass_sizes(375, 500, (512, 2048), 1.5) == [(768, 1024)]
    assert pass_sizes(375, 500, (512, 2048), 1.0) == [(512, 683)]
    assert pass_sizes(375, 500, (512, 2048), 0.75) == [(384, 512)]
    # ResizeToMultiple(size_divisor=32) then rounds the resized image up
    assert pass_sizes(375, 500, (512, 2048), 1.0, 32) == [(512, 683), (512, 704)]
    # no eval.scale: ratios of the image's own size (mmseg: img_scale=None with img_ratios)
    assert pass_sizes(1024, 2048, None, 0.75) == [(768, 1536)]
    assert pass_sizes(1024, 2048, None, 1.0) == [(1024, 2048)]
    # the network sees the original image resized once, straight to 768x1024
    seen = []

    def net(x):
        seen.append((tuple(x.shape[-2:]), x.clone()))
        return x[:, :2]

    img = torch.randn(1, 3, 375, 500)
    predict_probs(net, img, (375, 500), 2, scale=(512, 2048), scales=(1.0, 1.5))
    assert [s for s, _ in seen] == [(512, 683), (768, 1024)]
    once = F.interpolate(img, size=(768, 1024), mode="bilinear", align_corners=False)
    assert torch.equal(seen[1][1], once)
    seen.clear()
    predict_probs(net, img, (375, 500), 2, scale=(512, 2048), size_divisor=32)
    twice = F.interpolate(
        F.interpolate(img, size=(512, 683), mode="bilinear", align_corners=False),
        size=(512, 704),
        mode="bilinear",
        align_corners=False,
    )
    assert seen[0][0] == (512, 704) and torch.equal(seen[0][1], twice)


def test_eval_presets():
    cfg = load_config(REPO / "config" / "cityscapes_mscan_s.yaml", ["eval.preset=ms_flip"])
    assert (
        cfg["eval"]["scales"] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75] and cfg["eval"]["flip"] is True
    )
    cfg = load_config(REPO / "config" / "cityscapes_mscan_s.yaml", ["eval.preset=ss"])
    assert cfg["eval"]["scales"] == [1.0] and cfg["eval"]["flip"] is False
    with pytest.raises(UserError, match=r"eval\.preset ms_flip sets eval\.scales.*\[1\.0, 2\.0\]"):
        load_config(
            REPO / "config" / "cityscapes_mscan_s.yaml",
            ["eval.preset=ms_flip", "eval.scales=[1.0, 2.0]"],
        )
    with pytest.raises(UserError, match=r"eval\.preset"):
        load_config(REPO / "config" / "cityscapes_mscan_s.yaml", ["eval.preset=tta"])


def test_keep_ratio_size_matches_mmseg():
    assert keep_ratio_size(384, 512, (512, 2048)) == (512, 683)  # ADE20K: short side to 512
    assert keep_ratio_size(256, 2000, (512, 2048)) == (262, 2048)  # long side capped at 2048
    assert keep_ratio_size(1024, 2048, (2048, 1024)) == (1024, 2048)


# ----------------------------------------------------------------------------------------------------
# the evaluation directory


@pytest.fixture(scope="module")
def syn_root(tmp_path_factory):
    from srcr.data.synthetic_gen import ensure_synthetic

    root = tmp_path_factory.mktemp("syn") / "synthetic"
    ensure_synthetic(root, 4, 4, (32, 64), 0, workers=1, progress=False)
    return root


def test_evaluate_writes_all_outputs_and_skips_when_complete(syn_root, tmp_path, capsys):
    cfg = tiny_cfg(syn_root)
    ckpt = save_ckpt(cfg, tmp_path / "run" / "checkpoints" / "final.pth")
    out = tmp_path / "eval"
    rec = evaluate(
        cfg, tmp_path / "run", out, device="cpu", progress=False
    )  # a run directory resolves
    assert rec["checkpoint"]["path"] == str(ckpt.resolve()) and rec["checkpoint"]["iteration"] == 7

    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"] == {
        "name": "synthetic",
        "root": str(syn_root),
        "split": "val",
        "num_images": 4,
        "classes": m["metrics"]["class_names"],
    }
    assert m["config"] == json.loads(json.dumps(cfg))
    assert m["code_version"]["srcr"]
    for key in ("aAcc", "mIoU", "mAcc", "mBF@3", "mBIoU", "trimap", "left_out", "convention"):
        assert key in m["metrics"]
    # the saved per-image counts reproduce the figures
    again = SegEvaluator.from_file(out / "per_image.npz").compute()
    assert again["mIoU"] == pytest.approx(m["metrics"]["mIoU"])
    assert len(load_per_image(out / "per_image.npz")["names"]) == 4

    rows = list(csv.reader((out / "per_class.csv").open()))
    assert rows[0][:5] == ["class", "IoU", "Acc", "BF@1", "BF@3"] and "BIoU" in rows[0]
    assert "band_IoU@8" in rows[0] and "interior_IoU@8" in rows[0]
    assert [r[0] for r in rows[1:]] == m["dataset"]["classes"]
    iou = [float(r[1]) for r in rows[1:] if r[1]]
    assert np.mean(iou) == pytest.approx(m["metrics"]["mIoU"], abs=1e-3)

    pngs = sorted(p.name for p in (out / "vis").iterdir())
    assert len(pngs) == 4  # 2 images x (panel, palette prediction)
    panel = np.asarray(Image.open(out / "vis" / "00000.png"))
    assert panel.shape == (32, 4 * 64 + 3 * 2, 3)
    pred = Image.open(out / "vis" / "00000_pred.png")
    assert pred.mode == "P" and pred.size == (64, 32)

    z = np.load(out / "offsets.npz")
    assert [Path(p).name for p in z["image_ids"]] == ["00000.png", "00001.png", "00002.png"]
    assert z["s4_refined"].shape == (3, 2, 8, 16) and z["s4_initial"].shape == (3, 2, 8, 16)
    assert z["s4_weights"].shape == (3, 9, 8, 16) and z["s16_refined"].shape == (3, 2, 2, 4)

    # complete for this checkpoint and config: nothing is redone
    mtime = (out / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    evaluate(cfg, ckpt, out, device="cpu", progress=False)
    assert "already complete" in capsys.readouterr().err
    assert (out / "metrics.json").stat().st_mtime_ns == mtime

    # slide windows covering the image give the same figures as whole-image inference
    slide = evaluate(
        tiny_cfg(syn_root, "eval.mode=slide", "eval.crop_size=[32, 64]", "eval.stride=[16, 32]"),
        ckpt,
        tmp_path / "eval_slide",
        device="cpu",
        progress=False,
    )
    assert (
        slide["metrics"]["IoU"] == m["metrics"]["IoU"]
        and slide["metrics"]["mBF@3"] == m["metrics"]["mBF@3"]
    )
    # flip re-evaluates (another config) and still writes everything
    flip = evaluate(
        tiny_cfg(syn_root, "eval.flip=true", "eval.scales=[0.75, 1.0]"),
        ckpt,
        out,
        device="cpu",
        progress=False,
    )
    assert flip["inference"]["flip"] is True and (out / "metrics.json").stat().st_mtime_ns != mtime


def test_evaluate_bilinear_has_no_offsets_and_mismatch_is_named(syn_root, tmp_path):
    cfg = tiny_cfg(syn_root, "model.align=bilinear", "model.context=none", "eval.num_vis=0")
    ckpt = save_ckpt(cfg, tmp_path / "b.pth")
    evaluate(cfg, ckpt, tmp_path / "eval", device="cpu", progress=False)
    assert (
        not (tmp_path / "eval" / "offsets.npz").exists()
        and not (tmp_path / "eval" / "vis").exists()
    )
    with pytest.raises(UserError, match=r"model\.fpn_dim"):
        evaluate(
            tiny_cfg(syn_root, "model.align=bilinear", "model.context=none", "model.fpn_dim=16"),
            ckpt,
            tmp_path / "eval2",
            device="cpu",
            progress=False,
        )
    with pytest.raises(UserError, match="checkpoint not found"):
        resolve_checkpoint(tmp_path / "missing.pth")
    # FAM records its flow at every step
    cfg = tiny_cfg(
        syn_root, "model.align=fam", "model.context=none", "eval.num_vis=0", "eval.offset_images=2"
    )
    evaluate(
        cfg, save_ckpt(cfg, tmp_path / "f.pth"), tmp_path / "eval_fam", device="cpu", progress=False
    )
    z = np.load(tmp_path / "eval_fam" / "offsets.npz")
    assert set(z.files) == {"image_ids", "s16_flow", "s8_flow", "s4_flow", "label", "pred", "image"}
    assert z["s4_flow"].shape == (2, 2, 8, 16)


def test_offsets_npz_holds_label_prediction_and_image_of_each_offset_image(syn_root, tmp_path):
    cfg = tiny_cfg(
        syn_root, "model.align=srm", "model.context=none", "eval.num_vis=0", "eval.offset_images=2"
    )
    out = tmp_path / "eval"
    evaluate(cfg, save_ckpt(cfg, tmp_path / "s.pth"), out, device="cpu", progress=False)
    z = np.load(out / "offsets.npz")
    assert (
        z["label"].shape == (2, 32, 64)
        and z["pred"].shape == (2, 32, 64)
        and z["image"].shape == (2, 32, 64, 3)
    )
    assert z["label"].dtype == np.uint8 and z["image"].dtype == np.uint8
    for i, path in enumerate(z["image_ids"]):
        stem = Path(str(path)).stem
        lab = np.asarray(Image.open(syn_root / "labels" / "val" / f"{stem}.png"))
        assert (z["label"][i] == lab).all()
        rgb = np.asarray(
            Image.open(syn_root / "images" / "val" / f"{stem}.png").convert("RGB")
        ).astype(int)
        assert (
            np.abs(z["image"][i].astype(int) - rgb).max() <= 1
        )  # normalise + denormalise round trip


@pytest.mark.parametrize(
    "name,maker,extra",
    [
        (
            "cityscapes_mscan_s.yaml",
            "make_cityscapes",
            ["eval.crop_size=[32, 48]", "eval.stride=[24, 32]"],
        ),
        ("ade20k_mscan_s.yaml", "make_ade20k", ["eval.scale=[48, 256]"]),
    ],
)
def test_paper_configs_evaluate_on_fixtures(name, maker, extra, tmp_path):
    import dataset_fixtures

    root = getattr(dataset_fixtures, maker)(tmp_path / "data")
    cfg = load_config(
        REPO / "config" / name,
        TINY_MODEL + [f"data.root={root}", "eval.num_vis=1", "eval.offset_images=1", *extra],
    )
    ckpt = save_ckpt(cfg, tmp_path / "c.pth")
    rec = evaluate(cfg, ckpt, tmp_path / "eval", device="cpu", progress=False)
    assert rec["dataset"]["num_images"] == 2 and rec["inference"]["mode"] == cfg["eval"]["mode"]
    z = np.load(tmp_path / "eval" / "offsets.npz")
    assert z["s4_refined"].shape[:2] == (1, 2)
    if cfg["eval"]["scale"]:  # ADE20K: inference at the keep-ratio size up to a multiple of 32
        h, w = 64, 96  # fixture image size
        size = keep_ratio_size(h, w, cfg["eval"]["scale"])
        size = tuple(-(-s // 32) * 32 for s in size)
        assert z["s4_refined"].shape[-2:] == tuple(s // 4 for s in size)


def _same_backbone_ckpts(cfgs: list[dict], tmp_path: Path) -> list[Path]:
    """Checkpoints of ``cfgs`` whose backbones are bitwise equal (as fine-tuned on one frozen one)."""
    from srcr.models.segmentor import build_model

    torch.manual_seed(0)
    backbone = build_model(cfgs[0]["model"]).backbone.state_dict()
    paths = []
    for i, cfg in enumerate(cfgs):
        torch.manual_seed(i + 1)
        model = build_model(cfg["model"])
        model.backbone.load_state_dict(backbone)
        paths.append(tmp_path / f"ckpt{i}.pth")
        torch.save({"model": model.state_dict(), "iteration": 5, "config": cfg}, paths[-1])
    return paths


def _eval_dir_contents(out: Path) -> dict:
    """Every output of an evaluation directory, metrics.json without its timing and paths."""
    files = {}
    for p in sorted(out.rglob("*")):
        if p.suffix == ".npz":
            z = np.load(p)
            files[p.relative_to(out)] = {k: z[k].tolist() for k in z.files if k != "image_ids"}
        elif p.name == "metrics.json":
            m = json.loads(p.read_text())
            m.pop("seconds"), m["checkpoint"].pop("path")
            files[p.relative_to(out)] = m
        elif p.is_file():
            files[p.relative_to(out)] = p.read_bytes()
    return files


def test_checkpoints_evaluated_in_one_pass_write_exactly_what_each_writes_alone(
    syn_root, tmp_path, capsys
):
    from srcr.cli import main

    base = TINY_MODEL + [
        "model.num_classes=10",
        f"data.root={syn_root}",
        "data.synthetic={n_train: 4, n_val: 4, size: [32, 64], seed: 0}",
        "eval.mode=whole",
        "eval.num_vis=2",
        "eval.offset_images=3",
    ]
    own = [
        ["model.align=srm", "model.context=crm"],
        ["model.align=fam", "model.context=none", "eval.offset_images=1"],
        ["model.align=bilinear", "model.context=ppm", "eval.flip=true"],
    ]
    cfgs = [load_config(REPO / "config" / "default.yaml", base + o) for o in own]
    ckpts = _same_backbone_ckpts(cfgs, tmp_path)
    argv = [
        "evaluate",
        "--config",
        str(REPO / "config" / "default.yaml"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    argv += [a for o in base for a in ("--set", o)]
    for i, sets in enumerate(own):
        argv += ["--run", str(ckpts[i]), str(tmp_path / f"group{i}")] + [
            a for o in sets for a in ("--set", o)
        ]
    capsys.readouterr()
    assert main(argv) == 0
    assert "3 checkpoints share one frozen backbone" in capsys.readouterr().err
    for i, cfg in enumerate(cfgs):
        evaluate(cfg, ckpts[i], tmp_path / f"alone{i}", device="cpu", progress=False)
        group, alone = (
            _eval_dir_contents(tmp_path / f"group{i}"),
            _eval_dir_contents(tmp_path / f"alone{i}"),
        )
        assert group.keys() == alone.keys() and group == alone, i
    assert (tmp_path / "group0" / "offsets.npz").is_file() and not (
        tmp_path / "group2" / "offsets.npz"
    ).exists()


def test_a_pass_over_different_images_is_refused_before_anything_is_written(
    syn_root, tmp_path, capsys
):
    from srcr.cli import main
    from srcr.evaluate import evaluate_runs

    cfgs = [tiny_cfg(syn_root), tiny_cfg(syn_root, "eval.split=train")]
    ckpts = _same_backbone_ckpts(cfgs, tmp_path)
    with pytest.raises(
        UserError, match=r"cannot be evaluated in one pass .* differ in eval\.split"
    ):
        evaluate_runs(
            [(c, p, tmp_path / f"e{i}") for i, (c, p) in enumerate(zip(cfgs, ckpts))], device="cpu"
        )
    assert not (tmp_path / "e0").exists() and not (tmp_path / "e1").exists()
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--config",
                str(REPO / "config" / "default.yaml"),
                "--checkpoint",
                str(ckpts[0]),
            ]
        )
        == 2
    )
    assert (
        "give either --checkpoint and --out, or one --run CHECKPOINT OUT per run"
        in capsys.readouterr().err
    )
