"""The synthetic dataset generator (srcr.data.synthetic_gen) and `srcr synth`."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from srcr.cli import main
from srcr.data import synthetic_gen as sg
from srcr.data import synthetic_scene as scene
from srcr.errors import UserError

SMALL = (48, 96)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _samples(n: int, size=(128, 256), seed: int = 0, split: str = "train", instances: bool = False):
    return [sg.generate_sample(seed, split, i, size, return_instances=instances) for i in range(n)]


@pytest.fixture(scope="module")
def scenes():
    """40 full-size scenes with their car/boat instances, shared by the design tests."""
    return _samples(40, instances=True)


# ---------------------------------------------------------------------------------------------
# determinism and layout

# SHA-256 of image, label and instances of a few samples, pinned: a reordered random draw or a
# changed drawing step changes them (comparing two runs of today's code would not notice).
PINNED = {
    (0, "train", 0, (128, 256)): "35d19630dfc8899afb6ec0aae7115449b77f6ae0c3b7925f83cf38c3139c15e4",
    (0, "val", 3, (128, 256)): "9d6c89c3001cf987cf368acb864d8af184d0cb8b18f8d75ed507fd1d43e45129",
    (7, "train", 11, (48, 96)): "b0c2874b984d0736c7c8d7dfff905c786dc81a504de400d96a3bfcaed55d66f4",
    (3, "val", 5, (96, 160)): "25c62df0156d3e7e92f9fb911096654252b089e6256ceff45c4826e8a23bcf44",
    (1, "train", 2, (256, 512)): "5cf9b2a7d36c08540d9e72f7d20906e6a8333a535ebcfd20f481a3453153c5be",
}


def _sample_digest(seed: int, split: str, index: int, size: tuple[int, int]) -> str:
    image, label, instances = sg.generate_sample(seed, split, index, size, return_instances=True)
    h = hashlib.sha256(image.tobytes() + label.tobytes())
    for d in instances:
        h.update(repr((d["cls"], d["top"], d["left"], d["mask"].shape)).encode())
        h.update(np.packbits(d["mask"]).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("key", list(PINNED))
def test_samples_match_their_pinned_sha256(key):
    assert _sample_digest(*key) == PINNED[key]


def test_same_seed_byte_identical_across_worker_counts_and_sizes(tmp_path):
    a = sg.generate_dataset(tmp_path / "a", 5, 3, SMALL, seed=7, workers=1, progress=False)
    b = sg.generate_dataset(tmp_path / "b", 5, 3, SMALL, seed=7, workers=2, progress=False)
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert len(ha) == 2 * (5 + 3) + 1 and ha == hb
    assert a == b
    # image i does not depend on how many images the split has
    sg.generate_dataset(tmp_path / "c", 3, 1, SMALL, seed=7, workers=1, progress=False)
    hc = _hashes(tmp_path / "c")
    for kind in ("images", "labels"):
        for i in range(3):
            key = f"{kind}/train/{i:05d}.png"
            assert hc[key] == ha[key]
    # a different seed changes every image; train and val draw different images
    sg.generate_dataset(tmp_path / "d", 5, 3, SMALL, seed=8, workers=1, progress=False)
    hd = _hashes(tmp_path / "d")
    for key in ha:
        if key.startswith("images/"):
            assert hd[key] != ha[key], key
    assert ha["images/train/00000.png"] != ha["images/val/00000.png"]


def test_files_match_generate_sample_and_modes(tmp_path):
    sg.generate_dataset(tmp_path / "d", 2, 2, SMALL, seed=3, workers=1, progress=False)
    for split in ("train", "val"):
        for i in range(2):
            image, label = sg.generate_sample(3, split, i, SMALL)
            im = Image.open(tmp_path / "d" / "images" / split / f"{i:05d}.png")
            lb = Image.open(tmp_path / "d" / "labels" / split / f"{i:05d}.png")
            assert (
                im.mode == "RGB" and lb.mode == "L" and im.size == (SMALL[1], SMALL[0]) == lb.size
            )
            np.testing.assert_array_equal(np.array(im), image)
            np.testing.assert_array_equal(np.array(lb), label)


def test_meta_content(tmp_path):
    sg.generate_dataset(tmp_path / "d", 4, 2, SMALL, seed=5, workers=1, progress=False)
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["format"] == "srcr-synthetic"
    assert meta["generator_version"] == sg.GENERATOR_VERSION and isinstance(
        meta["generator_version"], int
    )
    assert meta["seed"] == 5 and meta["size"] == list(SMALL)
    assert meta["splits"] == {"train": 4, "val": 2}
    assert meta["ignore_index"] == 255
    assert meta["classes"] == sg.CLASSES and 8 <= len(meta["classes"]) <= 12
    assert len(meta["palette"]) == len(meta["classes"])
    assert all(
        len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
        for c in meta["palette"]
    )
    assert len({tuple(c) for c in meta["palette"]}) == len(meta["palette"])
    assert set(meta["class_descriptions"]) == set(meta["classes"])
    assert ["car", "boat"] in meta["groups"]["context_pairs"]
    for split, n in meta["splits"].items():
        counts = meta["pixel_counts"][split]
        assert sum(counts.values()) == n * SMALL[0] * SMALL[1]
    # the histogram in meta.json is the labels' own
    hist = np.zeros(256, np.int64)
    for p in sorted((tmp_path / "d" / "labels" / "val").iterdir()):
        hist += np.bincount(np.array(Image.open(p)).ravel(), minlength=256)
    assert meta["pixel_counts"]["val"] == {
        **{c: int(hist[k]) for k, c in enumerate(sg.CLASSES)},
        "void": int(hist[255]),
    }


@pytest.mark.parametrize("size", [(32, 32), (32, 64), (37, 50), (64, 128)])
def test_small_and_odd_sizes(size):
    for i in range(25):
        image, label = sg.generate_sample(1, "val", i, size)
        assert image.shape == (*size, 3) and image.dtype == np.uint8
        assert label.shape == size and label.dtype == np.uint8


def test_label_values_and_every_class_appears(scenes):
    seen = np.zeros(256, bool)
    for _image, label, _ in scenes[:15]:
        values = np.unique(label)
        assert np.all((values < sg.NUM_CLASSES) | (values == 255)), values
        seen[values] = True
    assert seen[: sg.NUM_CLASSES].all(), [c for k, c in enumerate(sg.CLASSES) if not seen[k]]
    assert seen[255], "no void pixels at all"


def test_class_frequencies_not_absurdly_skewed(scenes):
    hist = sum(np.bincount(lb.ravel(), minlength=256) for _, lb, _ in scenes)
    freq = hist[: sg.NUM_CLASSES] / hist[: sg.NUM_CLASSES].sum()
    assert freq.max() < 0.4 and freq.min() > 0.004, dict(zip(sg.CLASSES, freq.round(4)))
    void = hist[255] / hist.sum()
    assert 0.003 < void < 0.08


# ---------------------------------------------------------------------------------------------
# the design: thin structures, small objects, context classes


@pytest.mark.parametrize("name", ["pole", "lane"])
def test_thin_structures_are_2_to_4_px_wide(scenes, name):
    k = sg.CLASSES.index(name)
    total = survived = survived3 = 0
    for _, label, _ in scenes:
        m = label == k
        total += m.sum()
        survived += ndimage.binary_erosion(m, structure=np.ones((5, 5), bool)).sum()
        survived3 += ndimage.binary_erosion(m, structure=np.ones((3, 3), bool)).sum()
    assert total > 2000
    assert survived / total < 0.01  # nothing is 5 px wide
    assert survived3 / total < 0.45  # a 3x3 erosion leaves at most the middle 2 px of a 4 px line
    # and not sub-pixel: every image that has the class has whole pixels of it in several rows
    assert sum((label == k).any() for _, label, _ in scenes) >= 0.6 * len(scenes)


def test_pole_widths_cover_2_3_and_4_px(scenes):
    k = sg.CLASSES.index("pole")
    widths = set()
    for _, label, _ in scenes:
        m = (label == k).astype(np.int8)
        for row in m[: label.shape[0] // 3]:  # the top third: vertical pole shafts in the sky
            d = np.diff(np.concatenate([[0], row, [0]]))
            starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
            widths.update((ends - starts).tolist())
    # 2-4 px shafts, never 1 px: a stride-4 output can represent them (runs over 5 px are arms)
    assert {2, 3, 4} <= widths and 1 not in widths and 5 not in widths


def test_windows_are_small_objects(scenes):
    k = sg.CLASSES.index("window")
    areas = []
    for _, label, _ in scenes:
        comp, n = ndimage.label(label == k)
        areas += np.bincount(comp.ravel())[1:].tolist()
    areas = np.array(areas)
    assert len(areas) > 200
    # larger than a stride-4 cell, far smaller than a stride-32 one (1024 px)
    assert 30 <= np.median(areas) <= 64 and np.percentile(areas, 95) <= 100


def test_context_pair_has_one_appearance_function():
    # the appearance functions do not even know the class
    for fn in (sg.render_vehicle, sg.render_shadow):
        assert list(inspect.signature(fn).parameters) == ["rng", "h", "w"]
    a = sg.render_vehicle(np.random.default_rng(1), 12, 30)
    b = sg.render_vehicle(np.random.default_rng(1), 12, 30)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_context_pair_pixels_do_not_depend_on_the_class_id(monkeypatch):
    # swapping the ids of car and boat swaps them in the labels and changes no image byte
    car, boat = sg.CAR, sg.BOAT
    ref = _samples(6, size=(64, 128))
    monkeypatch.setattr(scene, "CAR", boat)  # the ids the drawing steps use
    monkeypatch.setattr(scene, "BOAT", car)
    for (image, label), (image2, label2) in zip(ref, _samples(6, size=(64, 128))):
        assert (label == car).any() or (label == boat).any()
        np.testing.assert_array_equal(image, image2)
        swapped = label.copy()
        swapped[label == car], swapped[label == boat] = boat, car
        np.testing.assert_array_equal(swapped, label2)


def test_cars_and_boats_look_alike_statistically():
    stats = {sg.CAR: [], sg.BOAT: []}
    for image, label, inst in _samples(100, size=(64, 128), instances=True):
        for d in inst:
            h, w = d["mask"].shape
            top, left = d["top"], d["left"]
            sub = np.zeros(label.shape, bool)
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + h, label.shape[0]), min(left + w, label.shape[1])
            sub[y0:y1, x0:x1] = d["mask"][y0 - top : y1 - top, x0 - left : x1 - left]
            visible = sub & (label == d["cls"])
            if visible.sum() < 10:
                continue
            px = image[visible].astype(float)
            stats[d["cls"]].append([h, w / h, px.max(1).mean(), px.min(1).mean(), *px.mean(0)])
    car, boat = np.array(stats[sg.CAR]), np.array(stats[sg.BOAT])
    assert len(car) > 100 and len(boat) > 100
    # same size, shape, brightness and colour distributions: every difference of means is within
    # 3.5 standard errors (a 20% darkening of boats alone gives 7)
    z = (car.mean(0) - boat.mean(0)) / np.sqrt(car.var(0) / len(car) + boat.var(0) / len(boat))
    assert np.all(np.abs(z) < 3.5), z


def test_cars_and_boats_differ_only_in_surroundings(scenes):
    allowed = {
        sg.CAR: {sg.ROAD, sg.LANE, sg.CAR, sg.POLE, 255},
        sg.BOAT: {sg.WATER, sg.BOAT, sg.POLE, 255},
    }
    rings = {sg.CAR: set(), sg.BOAT: set()}
    for _, label, _ in scenes:
        for cls in (sg.CAR, sg.BOAT):
            m = label == cls
            ring = ndimage.binary_dilation(m, np.ones((5, 5), bool)) & ~m
            rings[cls] |= set(np.unique(label[ring]).tolist())
    assert rings[sg.CAR] <= allowed[sg.CAR], rings[sg.CAR]
    assert rings[sg.BOAT] <= allowed[sg.BOAT], rings[sg.BOAT]
    assert sg.ROAD in rings[sg.CAR] and sg.WATER in rings[sg.BOAT]


def test_road_and_water_share_a_colour_distribution(scenes):
    means = {sg.ROAD: [], sg.WATER: []}
    for image, label, _ in scenes:
        for cls in means:
            m = label == cls
            if m.sum() > 200:
                means[cls].append(image[m].mean(0))
    road, water = np.array(means[sg.ROAD]), np.array(means[sg.WATER])
    se = np.sqrt(road.var(0) / len(road) + water.var(0) / len(water))
    assert np.all(np.abs(road.mean(0) - water.mean(0)) < 4 * se)


def test_void_rims_and_hood(scenes):
    # void comes as 1 px rims around vehicles and as a hood region touching the bottom edge
    rim_px = hood_images = 0
    for _, label, _ in scenes:
        comp, n = ndimage.label(label == 255)
        at_bottom = set(np.unique(comp[-1]).tolist()) - {0}
        if at_bottom and max(np.sum(comp == c) for c in at_bottom) > 3 * label.shape[1]:
            hood_images += 1
        rims = np.isin(comp, [c for c in range(1, n + 1) if c not in at_bottom])
        if rims.any():
            veh = np.isin(label, [sg.CAR, sg.BOAT])
            assert not ndimage.binary_erosion(rims, np.ones((3, 3), bool)).any()  # 1 px thin
            assert (
                rims & ~ndimage.binary_dilation(veh, np.ones((3, 3), bool))
            ).sum() < 0.05 * rims.sum()
        rim_px += rims.sum()
    assert rim_px > 500 and 2 <= hood_images <= 20


# ---------------------------------------------------------------------------------------------
# ensure_synthetic


def test_ensure_generates_then_reuses(tmp_path, monkeypatch):
    root = tmp_path / "syn"
    assert sg.ensure_synthetic(root, 3, 2, SMALL, 0, workers=1, progress=False) == root
    assert (root / "meta.json").is_file() and len(list((root / "images" / "train").iterdir())) == 3
    before = _hashes(root)

    def boom(*a, **k):
        raise AssertionError("must not regenerate")

    monkeypatch.setattr(sg, "generate_dataset", boom)
    sg.ensure_synthetic(root, 3, 2, list(SMALL), 0)
    assert _hashes(root) == before
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".")
    ]  # no temporary folders left


@pytest.mark.parametrize(
    "kwargs,key",
    [
        (dict(seed=1), "seed"),
        (dict(size=(48, 64)), "size"),
        (dict(n_train=4), "splits"),
        (dict(n_val=1), "splits"),
    ],
)
def test_ensure_rejects_mismatching_meta(tmp_path, kwargs, key):
    root = tmp_path / "syn"
    base = dict(n_train=3, n_val=2, size=SMALL, seed=0)
    sg.ensure_synthetic(root, **base, workers=1, progress=False)
    with pytest.raises(UserError) as e:
        sg.ensure_synthetic(root, **{**base, **kwargs})
    msg = str(e.value)
    assert str(root / "meta.json") in msg and repr(key) in msg


def test_ensure_rejects_old_generator_version_and_broken_trees(tmp_path):
    root = tmp_path / "syn"
    sg.ensure_synthetic(root, 3, 2, SMALL, 0, workers=1, progress=False)
    meta = json.loads((root / "meta.json").read_text())

    (root / "meta.json").write_text(json.dumps({**meta, "generator_version": 0}))
    with pytest.raises(UserError, match="generator_version"):
        sg.ensure_synthetic(root, 3, 2, SMALL, 0)
    (root / "meta.json").write_text(json.dumps(meta))

    (root / "labels" / "val" / "00001.png").unlink()
    with pytest.raises(UserError, match=r"labels/val/00001\.png: missing"):
        sg.ensure_synthetic(root, 3, 2, SMALL, 0)
    (root / "labels" / "val" / "00001.png").write_bytes(
        (root / "labels" / "val" / "00000.png").read_bytes()
    )

    (root / "images" / "train" / "00099.png").write_bytes(b"x")
    with pytest.raises(UserError, match=r"00099\.png: unexpected"):
        sg.ensure_synthetic(root, 3, 2, SMALL, 0)
    (root / "images" / "train" / "00099.png").unlink()
    sg.ensure_synthetic(root, 3, 2, SMALL, 0)  # intact again

    (root / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="meta.json: cannot read JSON"):
        sg.ensure_synthetic(root, 3, 2, SMALL, 0)
    (root / "meta.json").unlink()
    with pytest.raises(UserError, match="no meta.json"):
        sg.ensure_synthetic(root, 3, 2, SMALL, 0)


def test_bad_parameters(tmp_path):
    with pytest.raises(UserError, match="size"):
        sg.ensure_synthetic(tmp_path / "x", 2, 2, (16, 64), 0)
    with pytest.raises(UserError, match="n_train"):
        sg.ensure_synthetic(tmp_path / "x", 0, 2, SMALL, 0)
    with pytest.raises(UserError, match="seed"):
        sg.ensure_synthetic(tmp_path / "x", 2, 2, SMALL, -1)
    with pytest.raises(UserError, match="size"):
        sg.ensure_synthetic(tmp_path / "x", 2, 2, ["48", 96], 0)
    with pytest.raises(UserError, match="n_train"):
        sg.ensure_synthetic(tmp_path / "x", 2.5, 2, SMALL, 0)
    assert not (tmp_path / "x").exists()


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = sg.generate_sample

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk on fire")
        return real(*a, **k)

    monkeypatch.setattr(sg, "generate_sample", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        sg.ensure_synthetic(tmp_path / "syn", 3, 2, SMALL, 0, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_install_loses_gracefully(tmp_path, monkeypatch):
    # another process (e.g. a second DDP rank) installs the same dataset while we generate ours
    root = tmp_path / "syn"
    other = tmp_path / "other"
    sg.generate_dataset(other, 2, 1, SMALL, 0, workers=1, progress=False)
    winner = _hashes(other)
    real = sg._install

    def racing(tmp, root_, replace):
        os.rename(other, root_)  # the other process finishes first
        return real(tmp, root_, replace)

    monkeypatch.setattr(sg, "_install", racing)
    sg.ensure_synthetic(root, 2, 1, SMALL, 0, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # our temporary copy is gone
    assert _hashes(root) == winner

    # and a root that appears before we even start is simply checked
    monkeypatch.undo()
    shutil.rmtree(root)
    sg.generate_dataset(other, 2, 1, SMALL, 0, workers=1, progress=False)
    real_gen = sg.generate_dataset

    def late(root_, *a, **k):
        os.rename(other, root_)
        return real_gen(root_, *a, **k)

    monkeypatch.setattr(sg, "generate_dataset", late)
    sg.ensure_synthetic(root, 2, 1, SMALL, 0, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]


# ---------------------------------------------------------------------------------------------
# `srcr synth`


def _synth(out, *extra, seed="1"):
    return main(
        [
            "synth",
            "--out",
            str(out),
            "--n-train",
            "3",
            "--n-val",
            "2",
            "--size",
            "40x64",
            "--seed",
            seed,
            "--workers",
            "1",
            "--no-progress",
            *extra,
        ]
    )


def test_cli_round_trip(tmp_path, capsys):
    out = tmp_path / "syn"
    assert _synth(out) == 0
    captured = capsys.readouterr()
    assert "wrote 5 images of 40x64" in captured.out and "pixel share" in captured.out
    meta = json.loads((out / "meta.json").read_text())
    assert (
        meta["size"] == [40, 64] and meta["seed"] == 1 and meta["splits"] == {"train": 3, "val": 2}
    )
    assert Image.open(out / "images" / "val" / "00001.png").size == (64, 40)
    first = _hashes(out)

    assert _synth(out) == 0  # same request: nothing to do
    assert "nothing to do" in capsys.readouterr().err
    assert _hashes(out) == first

    assert _synth(out, seed="2") == 2  # different request without --force
    err = capsys.readouterr().err
    assert "meta.json" in err and "'seed'" in err and "--force" in err
    assert _hashes(out) == first

    assert _synth(out, "--force", seed="2") == 0
    assert json.loads((out / "meta.json").read_text())["seed"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name != "syn"]

    # the reader of the synthetic layout accepts what we wrote
    from srcr.data import build_dataset

    ds = build_dataset("synthetic", out, "train")
    assert len(ds) == 3 and ds.classes == sg.CLASSES and ds.num_classes == len(sg.CLASSES)
    item = ds[0]
    assert tuple(item["image"].shape) == (3, 40, 64) and tuple(item["label"].shape) == (40, 64)


def test_cli_refuses_to_replace_foreign_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert _synth(out, "--force") == 2
    assert "not a srcr synthetic dataset" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "precious"


def test_cli_empty_folder_and_bad_size(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert _synth(out) == 0 and (out / "meta.json").is_file()
    for bad in ("12", "axb", "16x64", "64x64x3"):
        assert main(["synth", "--out", str(tmp_path / "z"), "--size", bad, "--no-progress"]) == 2
        assert "--size" in capsys.readouterr().err
    assert sg.parse_size("128X256") == (128, 256)
