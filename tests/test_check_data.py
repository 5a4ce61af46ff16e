"""`srcr check-data`: exit codes, summary, every problem collected (not just the first)."""

from __future__ import annotations

import json
import shutil

import numpy as np
from dataset_fixtures import make_ade20k, make_cityscapes, make_synthetic, truncate_file
from PIL import Image

from srcr.cli import main


def test_clean_tree(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "cs", n_per_split=2, size=(16, 32))
    assert (
        main(
            [
                "check-data",
                "--dataset",
                "cityscapes",
                "--root",
                str(root),
                "--workers",
                "0",
                "--class-counts",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "cityscapes train: 2 image/label pairs checked, 0 problem(s)" in out
    assert "cityscapes val: 2 image/label pairs checked, 0 problem(s)" in out
    assert "no problems found" in out and "(ignored)" in out and "road" in out


def test_broken_tree_collects_everything(tmp_path, capsys):
    root = make_ade20k(tmp_path / "ade", n_per_split=4, size=(24, 32))
    train_img = sorted((root / "images" / "training").iterdir())
    train_ann = sorted((root / "annotations" / "training").iterdir())
    truncate_file(train_img[0], 0.5)  # unreadable
    Image.fromarray(np.full((24, 32), 200, np.uint8)).save(train_ann[1])  # values
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(train_ann[2])  # size
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(
        root / "images" / "validation" / "ADE_val_orphan.jpg"
    )
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(
        root / "annotations" / "validation" / "ADE_val_lonely.png"
    )
    report = tmp_path / "report.json"
    rc = main(
        [
            "check-data",
            "--dataset",
            "ade20k",
            "--root",
            str(root),
            "--workers",
            "0",
            "--json",
            str(report),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert "ade20k train: 4 image/label pairs checked, 3 problem(s)" in out
    assert "ade20k val: 4 image/label pairs checked, 2 problem(s)" in out
    assert "problems by kind: size 1, unpaired 2, unreadable 1, values 1" in out
    assert str(train_img[0]) in out and str(train_ann[1]) in out and str(train_ann[2]) in out
    assert "ADE_val_orphan.jpg" in out and "ADE_val_lonely.png" in out
    data = json.loads(report.read_text())
    assert data["problems_by_kind"] == {"unreadable": 1, "values": 1, "size": 1, "unpaired": 2}
    assert len(data["problems"]) == 5 and data["splits"]["train"]["problems"] == 3
    # the clean pairs still contribute pixel counts
    assert (
        sum(data["splits"]["val"]["class_pixels"].values())
        + data["splits"]["val"]["ignored_pixels"]
        == 4 * 24 * 32
    )


def test_single_split_and_workers_agree(tmp_path, capsys):
    root = make_synthetic(tmp_path / "syn", n_per_split=6, size=(16, 16))
    lbl = root / "labels" / "val" / "00003.png"
    Image.fromarray(np.full((16, 16), 9, np.uint8)).save(lbl)
    outs = []
    for workers in ("0", "2"):
        rep = tmp_path / f"r{workers}.json"
        assert (
            main(
                [
                    "check-data",
                    "--dataset",
                    "synthetic",
                    "--root",
                    str(root),
                    "--split",
                    "val",
                    "--workers",
                    workers,
                    "--json",
                    str(rep),
                ]
            )
            == 1
        )
        out = capsys.readouterr().out
        assert (
            "synthetic val: 6 image/label pairs checked, 1 problem(s)" in out and "train" not in out
        )
        assert str(lbl) in out
        outs.append(json.loads(rep.read_text()))
    assert outs[0] == outs[1]
    assert (
        main(
            [
                "check-data",
                "--dataset",
                "synthetic",
                "--root",
                str(root),
                "--split",
                "train",
                "--workers",
                "2",
            ]
        )
        == 0
    )


def test_missing_root_and_split(tmp_path, capsys):
    assert main(["check-data", "--dataset", "bdd100k", "--root", str(tmp_path / "nope")]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err
    root = make_cityscapes(tmp_path / "cs", n_per_split=1, size=(8, 8))
    shutil.rmtree(root / "gtFine" / "val")
    assert (
        main(["check-data", "--dataset", "cityscapes", "--root", str(root), "--workers", "0"]) == 1
    )
    out = capsys.readouterr().out
    assert "missing 1" in out and str(root / "gtFine" / "val") in out
    assert "cityscapes train: 1 image/label pairs checked, 0 problem(s)" in out
