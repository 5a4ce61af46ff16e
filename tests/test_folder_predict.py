"""The `folder` dataset (a dataset of your own) and `srcr predict` (your own images): a fixture
dataset with two classes plus ignore, a label_map and JPEG images of two sizes trains, evaluates and
predicts; predictions have the input sizes and the dataset's palette; every bad input gets its
message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import FOLDER_PALETTE, FOLDER_SIZES, make_folder, truncate_file
from PIL import Image

from srcr.cli import main
from srcr.config import load_config
from srcr.errors import UserError
from srcr.metrics import load_per_image

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "config" / "folder_mscan_s.yaml")
TINY = [
    "model.backbone=mscan_t",
    "model.backbone_options={embed_dims: [8, 16, 16, 16], depths: [1, 1, 1, 1], "
    "drop_path_rate: 0.0}",
    "model.fpn_dim=8",
    "model.embed_dim=8",
    "model.aux_head=false",
    "data.num_workers=0",
    "data.train_pipeline.scale=[48, 64]",
    "data.train_pipeline.crop_size=[32, 32]",
    "train.iterations=4",
    "train.batch_size=2",
    "train.checkpoint_interval=4",
    "train.log_interval=2",
    "train.schedule.warmup_iters=1",
    "train.loss.contrastive.warmup=1",
    "train.optimizer.lr=0.005",
    "eval.mode=slide",
    "eval.crop_size=[32, 32]",
    "eval.stride=[24, 24]",
    "eval.num_vis=4",
    "eval.offset_images=0",
]


def sets(items) -> list[str]:
    return [a for s in items for a in ("--set", s)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset root, run directory, evaluation directory) of a 4-iteration tiny run."""
    base = tmp_path_factory.mktemp("folder")
    root = make_folder(base / "data")
    run = base / "run"
    over = sets(TINY + [f"data.root={root}"])
    assert main(["train", "--config", CONFIG, "--out", str(run), "--no-progress", *over]) == 0
    assert (
        main(
            [
                "evaluate",
                "--config",
                str(run / "config.yaml"),
                "--checkpoint",
                str(run),
                "--out",
                str(run / "eval"),
                "--no-progress",
            ]
        )
        == 0
    )
    return root, run, run / "eval"


def write_png_rgb16(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def predict(*args) -> int:
    return main(["predict", "--no-progress", *map(str, args)])


# ----------------------------------------------------------------------------------------------------
# the folder dataset end to end


def test_num_classes_comes_from_the_names_and_evaluation_reads_the_label_map(trained):
    root, run, ev = trained
    cfg = load_config(run / "config.yaml")
    assert cfg["model"]["num_classes"] == 2 and cfg["data"]["dataset"] == "folder"
    m = json.loads((ev / "metrics.json").read_text())
    assert m["dataset"]["classes"] == ["ground", "object"] and m["dataset"]["num_images"] == 4
    # the raw ids 10 / 20 / 0 arrive as classes 0 / 1 / ignored (rows of the confusion: labels)
    raw = np.concatenate(
        [np.array(Image.open(p)).ravel() for p in sorted((root / "labels" / "val").rglob("*.png"))]
    )
    conf = load_per_image(ev / "per_image.npz")["confusion"]
    assert conf.sum(1).tolist() == [int((raw == 10).sum()), int((raw == 20).sum())]
    assert (raw == 0).any()  # ignored pixels exist and are not scored


def test_predict_mirrors_folders_keeps_sizes_uses_the_palette_and_equals_evaluate(
    trained, tmp_path
):
    root, run, ev = trained
    out = tmp_path / "pred"
    assert (
        predict(
            "--checkpoint", run, "--input", root / "images" / "val", "--recursive", "--out", out
        )
        == 0
    )
    val = root / "images" / "val"
    images = sorted(val.rglob("*.jpg"))
    assert {Image.open(p).size for p in images} == {(w, h) for h, w in FOLDER_SIZES}
    for path in images:
        rel = path.relative_to(val).with_suffix("")
        stem = out / rel.parent / rel.name
        label = Image.open(f"{stem}_label.png")
        color = np.array(Image.open(f"{stem}_color.png"))
        overlay = Image.open(f"{stem}_overlay.png")
        assert label.mode == "L" and label.size == Image.open(path).size == overlay.size
        pred = np.array(label)
        assert set(np.unique(pred)) <= {0, 1}
        assert np.array_equal(color, np.array(FOLDER_PALETTE, np.uint8)[pred])
        # the same prediction as `srcr evaluate` (its palette PNGs: eval.num_vis=4 = every image)
        assert np.array_equal(pred, np.array(Image.open(ev / "vis" / f"{path.stem}_pred.png")))
    summary = json.loads((out / "predict.json").read_text())
    assert len(summary["predicted"]) == 4 and summary["failed"] == []
    assert summary["config"]["eval"]["mode"] == "slide"  # the run's config.yaml supplied eval


def test_predict_offsets_draws_the_report_figure(trained, tmp_path):
    root, run, _ = trained
    one = next((root / "images" / "val").glob("*.jpg"))
    out = tmp_path / "pred"
    assert (
        predict(
            "--checkpoint",
            run / "checkpoints" / "final.pth",
            "--input",
            one,
            "--out",
            out,
            "--offsets",
            "--set",
            "eval.mode=whole",
        )
        == 0
    )
    fig = out / f"{one.stem}_offsets.png"
    assert fig.is_file() and (out / f"{one.stem}_offsets.pdf").is_file()
    assert Image.open(fig).size[0] > 1000  # the report's five-column figure


def test_predict_converts_odd_images_lists_failures_and_exits_1(trained, tmp_path, capsys):
    _, run, _ = trained
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (33, 47), dtype=np.uint8)).save(src / "grey.png")
    Image.fromarray(rng.integers(0, 255, (20, 30, 4), dtype=np.uint8), "RGBA").save(
        src / "rgba.png"
    )
    Image.fromarray(rng.integers(0, 65535, (17, 23), dtype=np.uint16)).save(src / "deep.png")
    write_png_rgb16(src / "rgb16.png", rng.integers(0, 65535, (9, 13, 3), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)).save(src / "tiny.jpg")
    (src / "notes.png").write_text("not an image")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        src / "cut.jpg", quality=95
    )
    truncate_file(src / "cut.jpg", 0.4)
    out = tmp_path / "pred"
    rc = predict(
        "--checkpoint",
        run,
        "--input",
        src,
        "--out",
        out,
        "--input",
        tmp_path / "missing.jpg",
        tmp_path / "none*.jpg",
    )
    err = capsys.readouterr().err
    assert rc == 1
    for name, size in (
        ("grey", (47, 33)),
        ("rgba", (30, 20)),
        ("deep", (23, 17)),
        ("rgb16", (13, 9)),
        ("tiny", (7, 5)),
    ):
        assert Image.open(out / f"{name}_label.png").size == size, name
    assert f"converted {src / 'grey.png'}: greyscale converted to RGB" in err
    assert f"converted {src / 'rgba.png'}: RGBA: alpha dropped" in err
    assert f"converted {src / 'deep.png'}: 16-bit greyscale" in err
    assert f"converted {src / 'rgb16.png'}: 16 bits per channel reduced to 8" in err
    assert f"FAILED {src / 'notes.png'}: not an image" in err
    assert f"FAILED {src / 'cut.jpg'}: cannot decode" in err
    assert f"FAILED {tmp_path / 'missing.jpg'}: no such file or folder" in err
    assert f"FAILED {tmp_path / 'none*.jpg'}: no file matches this pattern" in err
    assert "5 image(s) predicted" in err and "4 converted, 4 failed" in err
    assert not (out / "notes_label.png").exists() and not (out / "cut_label.png").exists()
    assert len(json.loads((out / "predict.json").read_text())["failed"]) == 4


def test_predict_stops_before_any_image_on_a_bad_checkpoint_config_or_output(
    trained, tmp_path, capsys
):
    root, run, _ = trained
    val = root / "images" / "val"
    out = tmp_path / "pred"
    assert predict("--checkpoint", tmp_path / "nope.pth", "--input", val, "--out", out) == 2
    assert f"checkpoint not found: {tmp_path / 'nope.pth'}" in capsys.readouterr().err
    assert (
        predict("--checkpoint", run, "--input", val, "--out", out, "--set", "model.fpn_dim=16") == 2
    )
    err = capsys.readouterr().err
    assert f"{run / 'checkpoints' / 'final.pth'} was trained with other settings" in err
    assert "model.fpn_dim: checkpoint 8, requested 16" in err
    # a setting that keeps every weight's shape would otherwise predict with another model
    args = ("--checkpoint", run, "--input", val, "--out", out, "--set", "model.coarse_shift=1.0")
    assert predict(*args) == 2
    assert "model.coarse_shift: checkpoint 0.0, requested 1.0" in capsys.readouterr().err
    assert predict("--checkpoint", run, "--input", val, "--out", val / "pred") == 2
    assert "is the input folder" in capsys.readouterr().err
    assert not out.exists() and not (val / "pred").exists()


def test_predict_globs_mirror_paths_below_the_pattern_base_and_log_plain_lines(
    trained, tmp_path, capsys
):
    root, run, _ = trained
    out = tmp_path / "pred"
    pattern = str(root / "images" / "val" / "**" / "img1_*.jpg")
    assert main(["predict", "--checkpoint", str(run), "--input", pattern, "--out", str(out)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*_label.png")) == [
        "sub/img1_0_label.png",
        "sub/img1_1_label.png",
    ]
    # stderr is not a terminal here (a log file): one plain line per image, no bar redraws
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("predict: image")]
    assert [ln.split(" (")[0] for ln in lines] == ["predict: image 1/2", "predict: image 2/2"]
    assert "\r" not in "".join(lines)


def test_flops_counts_a_folder_config_at_its_pipeline_scale(trained, tmp_path):
    root, _, _ = trained
    out = tmp_path / "flops.json"
    assert (
        main(["flops", "--config", CONFIG, *sets(TINY + [f"data.root={root}"]), "--json", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["size"] == [48, 64]


# ----------------------------------------------------------------------------------------------------
# bad datasets: check-data names the file


def check(root, capsys) -> tuple[int, str]:
    rc = main(["check-data", "--dataset", "folder", "--root", str(root), "--workers", "0"])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def test_clean_folder_dataset_checks_clean(tmp_path, capsys):
    rc, text = check(make_folder(tmp_path / "d"), capsys)
    assert rc == 0 and "folder train: 4 image/label pairs checked, 0 problem(s)" in text


def test_unpaired_values_and_sizes_are_reported_with_their_files(tmp_path, capsys):
    root = make_folder(tmp_path / "d")
    (root / "labels" / "train" / "img0_0.png").unlink()  # image without label
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(
        root / "labels" / "val" / "extra.png"
    )  # no image
    bad = root / "labels" / "train" / "img0_1.png"
    raw = np.array(Image.open(bad))
    raw[0, :3] = [30, 1, 255]  # 30: unmapped and out of range; 1: a class index; 255: ignore
    Image.fromarray(raw).save(bad)
    small = root / "labels" / "val" / "img0_0.png"
    Image.fromarray(np.array(Image.open(small))[:-2]).save(small)
    rc, text = check(root, capsys)
    assert rc == 1
    assert "have no label" in text and "img0_0.jpg" in text
    assert "have no image" in text and "extra.png" in text
    assert (
        f"{bad}: label values [30] (1 pixels) are outside the folder range; expected class indices "
        f"0..1, the mapped values [0, 10, 20] (label_map) or the ignore index 255" in text
    )
    assert f"{small}: label is 56x38 (WxH) but its image" in text


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "names: [a, b]\npalette: [[1, 2, 3]]\n",
            "palette: 1 colours for 2 classes; expected one [r, g, b] per name",
        ),
        (
            "names: [a, b]\npalette: [[1, 2, 3], [1, 2, 300]]\n",
            "palette[1]: [1, 2, 300]; expected [r, g, b]",
        ),
        ("palette: [[1, 2, 3]]\n", "names: missing; expected the list of class names"),
        ("names: a\n", "names: expected a non-empty list of class names, got 'a'"),
        ("names: [a, a]\n", "names: a listed more than once"),
        (
            "- a\n- b\n",
            "expected a mapping with keys names, palette, ignore_index, label_map, got list",
        ),
        ("names: [a, b]\ncolours: []\n", "unknown key(s) colours"),
        ("names: [a, b]\nignore_index: 1\n", "ignore_index: 1 is the index of class 'b'"),
        (
            "names: [a, b]\nlabel_map: {7: 5}\n",
            "label_map[7]: 5; expected a class index 0..1 or the ignore index 255",
        ),
        (
            "names: [a, b]\nlabel_map: {300: 1}\n",
            "label_map: key 300: expected a raw label value 0..255",
        ),
        ("names: [a, b\n", "not valid YAML"),
    ],
)
def test_malformed_classes_yaml_is_refused_naming_the_file_and_key(tmp_path, capsys, text, message):
    root = make_folder(tmp_path / "d", n_per_split=1)
    (root / "classes.yaml").write_text(text)
    rc, out = check(root, capsys)
    assert rc == 2 and str(root / "classes.yaml") in out and message in out, out


def test_missing_classes_yaml_stops_config_loading_and_check_data(tmp_path, capsys):
    root = make_folder(tmp_path / "d", n_per_split=1)
    (root / "classes.yaml").unlink()
    with pytest.raises(UserError, match=f"{root / 'classes.yaml'} not found"):
        load_config(CONFIG, [f"data.root={root}"])
    rc, out = check(root, capsys)
    assert rc == 2 and f"{root / 'classes.yaml'} not found" in out
