"""Dataset readers: on-disk layouts, label mappings pixel by pixel, item contract, validation errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fixtures import (
    make_ade20k,
    make_bdd100k,
    make_cityscapes,
    make_synthetic,
    truncate_file,
)
from PIL import Image

from srcr.data import DATASETS, build_dataset
from srcr.data.transforms import Compose, RandomFlip
from srcr.errors import UserError

# Official cityscapesscripts labels.py, written out independently of the reader: trainId of ids 0..33.
CITYSCAPES_TRAINID_OF_ID = [255] * 7 + [
    0,
    1,
    255,
    255,
    2,
    3,
    4,
    255,
    255,
    255,
    5,
    255,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    255,
    255,
    16,
    17,
    18,
]


def _save(arr, path):
    Image.fromarray(arr).save(path)


def _first_pair(ds):
    return ds.pairs[0]


def _grid_label(values, size):
    """A HxW label whose pixels cycle through ``values`` (every value present)."""
    h, w = size
    flat = np.resize(np.asarray(values, dtype=np.uint8), h * w)
    return flat.reshape(h, w)


# --- registry -------------------------------------------------------------------------------------


def test_registry_and_metadata():
    assert set(DATASETS) == {"cityscapes", "bdd100k", "ade20k", "synthetic", "folder"}
    cs, bdd, ade = DATASETS["cityscapes"], DATASETS["bdd100k"], DATASETS["ade20k"]
    assert cs.classes[0] == "road" and cs.classes[-1] == "bicycle" and len(cs.classes) == 19
    assert cs.palette[0] == [128, 64, 128] and cs.palette[18] == [119, 11, 32]
    assert bdd.classes == cs.classes and bdd.palette == cs.palette
    assert len(ade.classes) == len(ade.palette) == 150
    assert ade.classes[:3] == ["wall", "building", "sky"] and ade.classes[-1] == "flag"
    assert ade.palette[0] == [120, 120, 120] and ade.palette[-1] == [92, 0, 255]
    assert all(c.ignore_index == 255 for c in DATASETS.values())


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(UserError, match="unknown dataset 'kitti'"):
        build_dataset("kitti", tmp_path, "train")
    root = make_bdd100k(tmp_path / "bdd", n_per_split=1)
    with pytest.raises(UserError, match="unknown split 'test'"):
        build_dataset("bdd100k", root, "test")


# --- item contract --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,maker",
    [
        ("cityscapes", make_cityscapes),
        ("bdd100k", make_bdd100k),
        ("ade20k", make_ade20k),
        ("synthetic", make_synthetic),
    ],
)
def test_items_all_datasets(tmp_path, name, maker):
    root = maker(tmp_path / name, n_per_split=2)
    for split in ("train", "val"):
        ds = build_dataset(name, root, split)
        assert len(ds) == 2 and ds.num_classes == len(ds.classes) == len(ds.palette)
        item = ds[1]
        img_path = Path(item["path"])
        assert img_path == ds.pairs[1][0] and img_path.exists()
        ref = np.asarray(Image.open(img_path).convert("RGB"))
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, *ref.shape[:2])
        # no transforms: the raw 0..255 pixel values
        assert torch.equal(
            item["image"], torch.from_numpy(ref.transpose(2, 0, 1).astype(np.float32))
        )
        lab = item["label"]
        assert lab.dtype == torch.int64 and lab.shape == ref.shape[:2]
        vals = set(lab.unique().tolist())
        assert vals <= set(range(ds.num_classes)) | {255}
        assert torch.equal(ds[-1]["label"], lab)
    with pytest.raises(IndexError):
        ds[2]


def test_item_seeds_are_deterministic(tmp_path):
    root = make_bdd100k(tmp_path / "bdd", n_per_split=2, size=(16, 24))
    seen = []

    def spy(image, label, rng):
        seen.append(rng.random())
        return image, label

    ds = build_dataset("bdd100k", root, "train", transforms=Compose([spy, RandomFlip(0.5)]))
    a, b, _ = ds[(0, 123)], ds[(0, 123)], ds[(0, 124)]
    assert seen[0] == seen[1] == np.random.default_rng(123).random() != seen[2]
    assert torch.equal(a["image"], b["image"])
    ds[0], ds[0], ds[1]
    assert seen[3] == seen[4] != seen[5]  # fixed per index without a seed
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 16, 24) and batch["label"].dtype == torch.int64


# --- label mappings -------------------------------------------------------------------------------


def test_cityscapes_labelids_every_id(tmp_path):
    root = make_cityscapes(tmp_path / "cs", n_per_split=1, size=(16, 35))
    ds = build_dataset("cityscapes", root, "train")
    img_path, lbl_path = _first_pair(ds)
    assert lbl_path.name.endswith("_gtFine_labelIds.png")
    raw = _grid_label(list(range(34)) + [255], (16, 35))  # 255 = license plate (-1) in an 8-bit PNG
    _save(raw, lbl_path)
    lab = build_dataset("cityscapes", root, "train")[0]["label"].numpy()
    expected = np.array(CITYSCAPES_TRAINID_OF_ID + [255])[
        np.resize(np.arange(35), 16 * 35).reshape(16, 35)
    ]
    np.testing.assert_array_equal(lab, expected)
    for i in range(34):  # each id on its own
        assert np.all(lab[raw == i] == CITYSCAPES_TRAINID_OF_ID[i])
    assert np.all(lab[raw == 255] == 255)


def test_cityscapes_prefers_labeltrainids(tmp_path):
    root = make_cityscapes(tmp_path / "cs", n_per_split=2, size=(16, 32), label_kind="both")
    ds = build_dataset("cityscapes", root, "train")
    assert all(lbl.name.endswith("_gtFine_labelTrainIds.png") for _, lbl in ds.pairs)
    # make the two files disagree: the trainIds file must win
    trainids = _grid_label([3, 18, 255, 0], (16, 32))
    _save(trainids, ds.pairs[0][1])
    np.testing.assert_array_equal(ds[0]["label"].numpy(), trainids)
    # a pair with only labelIds is still mapped through the table
    ds.pairs[1][1].unlink()
    ds2 = build_dataset("cityscapes", root, "train")
    assert ds2.pairs[1][1].name.endswith("_gtFine_labelIds.png")
    raw = np.asarray(Image.open(ds2.pairs[1][1]))
    np.testing.assert_array_equal(
        ds2[1]["label"].numpy(), np.array(CITYSCAPES_TRAINID_OF_ID + [255] * 222)[raw]
    )


def test_cityscapes_trainids_out_of_range(tmp_path):
    root = make_cityscapes(tmp_path / "cs", n_per_split=1, size=(8, 8), label_kind="labelTrainIds")
    ds = build_dataset("cityscapes", root, "train")
    _save(np.full((8, 8), 19, np.uint8), ds.pairs[0][1])
    with pytest.raises(UserError) as e:
        ds[0]
    assert (
        str(ds.pairs[0][1]) in str(e.value) and "[19]" in str(e.value) and "0..18" in str(e.value)
    )


def test_cityscapes_unknown_id(tmp_path):
    root = make_cityscapes(tmp_path / "cs", n_per_split=1, size=(8, 8))
    ds = build_dataset("cityscapes", root, "val")
    raw = np.full((8, 8), 7, np.uint8)
    raw[0, :3] = [34, 40, 254]
    _save(raw, ds.pairs[0][1])
    with pytest.raises(UserError) as e:
        ds[0]
    msg = str(e.value)
    assert str(ds.pairs[0][1]) in msg and "[34, 40, 254]" in msg and "3 pixels" in msg


def test_ade20k_reduce_zero_label(tmp_path):
    root = make_ade20k(tmp_path / "ADEChallengeData2016", n_per_split=1, size=(12, 13))
    ds = build_dataset("ade20k", root, "val")
    assert ds.pairs[0][1].parent.name == "validation"
    raw = _grid_label(list(range(151)) + [255], (12, 13))
    _save(raw, ds.pairs[0][1])
    lab = ds[0]["label"].numpy()
    assert np.all(lab[raw == 0] == 255) and np.all(lab[raw == 255] == 255)
    for k in range(1, 151):
        assert np.all(lab[raw == k] == k - 1)
    raw[3, 3] = 151
    _save(raw, ds.pairs[0][1])
    with pytest.raises(UserError, match=r"label values \[151\].*0\.\.150"):
        ds[0]


def test_bdd100k_passthrough(tmp_path):
    root = make_bdd100k(tmp_path / "bdd", n_per_split=1, size=(10, 20))
    ds = build_dataset("bdd100k", root, "train")
    raw = _grid_label(list(range(19)) + [255], (10, 20))
    _save(raw, ds.pairs[0][1])
    np.testing.assert_array_equal(ds[0]["label"].numpy(), raw)
    raw[0, 0] = 19
    _save(raw, ds.pairs[0][1])
    with pytest.raises(UserError, match=r"\[19\]"):
        ds[0]


def test_sixteen_bit_label_out_of_range(tmp_path):
    root = make_bdd100k(tmp_path / "bdd", n_per_split=1, size=(6, 6))
    ds = build_dataset("bdd100k", root, "train")
    raw = np.full((6, 6), 3, np.uint16)
    raw[0, 0] = 26001  # e.g. an instanceIds file given as a label
    Image.fromarray(raw).save(ds.pairs[0][1])
    with pytest.raises(UserError, match=r"\[26001\]"):
        ds[0]
    raw[0, 0] = 18  # 16-bit but in range: accepted
    Image.fromarray(raw).save(ds.pairs[0][1])
    assert ds[0]["label"][0, 0] == 18


def test_synthetic_meta(tmp_path):
    root = make_synthetic(tmp_path / "syn", n_per_split=3, num_classes=5)
    ds = build_dataset("synthetic", root, "train")
    meta = json.loads((root / "meta.json").read_text())
    assert ds.classes == meta["classes"] and ds.palette == meta["palette"] and ds.num_classes == 5
    assert len(ds) == 3
    # meta.json disagrees with the files
    (root / "images" / "val" / "00002.png").unlink()
    (root / "labels" / "val" / "00002.png").unlink()
    with pytest.raises(UserError, match="lists 3 val images but 2"):
        build_dataset("synthetic", root, "val")
    meta["format"] = "something-else"
    (root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="format is 'something-else'"):
        build_dataset("synthetic", root, "train")
    (root / "meta.json").unlink()
    with pytest.raises(UserError, match="no meta.json"):
        build_dataset("synthetic", root, "train")


# --- validation errors ----------------------------------------------------------------------------


def test_missing_root(tmp_path):
    for name in DATASETS:
        with pytest.raises(UserError) as e:
            build_dataset(name, tmp_path / "nowhere", "train")
        assert str(tmp_path / "nowhere") in str(e.value) and "does not exist" in str(e.value)


def test_missing_split_dir_and_root_hint(tmp_path):
    root = make_ade20k(tmp_path / "ADEChallengeData2016", n_per_split=1)
    with pytest.raises(UserError) as e:
        build_dataset("ade20k", tmp_path, "train")
    msg = str(e.value)
    assert str(tmp_path / "images" / "training") in msg and "Did you mean --root" in msg
    import shutil

    shutil.rmtree(root / "annotations" / "validation")
    with pytest.raises(UserError, match=re.escape(str(root / "annotations" / "validation"))):
        build_dataset("ade20k", root, "val")
    build_dataset("ade20k", root, "train")  # the other split is fine


def test_unpaired_files_listed(tmp_path):
    root = make_cityscapes(tmp_path / "cs", n_per_split=2, size=(8, 8))
    img = root / "leftImg8bit" / "train" / "aachen" / "aachen_000099_000019_leftImg8bit.png"
    _save(np.zeros((8, 8, 3), np.uint8), img)
    lbl = root / "gtFine" / "train" / "bochum" / "bochum_000042_000019_gtFine_labelIds.png"
    _save(np.zeros((8, 8), np.uint8), lbl)
    with pytest.raises(UserError) as e:
        build_dataset("cityscapes", root, "train")
    msg = str(e.value)
    assert "1 image(s)" in msg and "aachen/aachen_000099_000019_leftImg8bit.png" in msg
    assert "1 label(s)" in msg and "bochum/bochum_000042_000019_gtFine_labelIds.png" in msg
    ds = DATASETS["cityscapes"](
        root, "train", strict=False
    )  # check-data mode: collected, not raised
    assert len(ds) == 2 and sorted(p.kind for p in ds.problems) == ["unpaired", "unpaired"]


def test_empty_split(tmp_path):
    root = make_bdd100k(tmp_path / "bdd", n_per_split=1)
    for f in (root / "images" / "10k" / "val").iterdir():
        f.unlink()
    for f in (root / "labels" / "sem_seg" / "masks" / "val").iterdir():
        f.unlink()
    with pytest.raises(UserError, match=r"no images matching \*\.jpg"):
        build_dataset("bdd100k", root, "val")


@pytest.mark.parametrize("which", [0, 1])
def test_truncated_files(tmp_path, which):
    root = make_ade20k(tmp_path / "ade", n_per_split=1, size=(48, 64))
    ds = build_dataset("ade20k", root, "train")
    path = ds.pairs[0][which]
    truncate_file(path, 0.6)
    with pytest.raises(UserError) as e:
        ds[0]
    assert str(path) in str(e.value) and "cannot decode" in str(e.value)


def test_garbage_file(tmp_path):
    root = make_synthetic(tmp_path / "syn", n_per_split=1)
    ds = build_dataset("synthetic", root, "train")
    ds.pairs[0][0].write_bytes(b"not a png at all")
    with pytest.raises(UserError, match=re.escape(str(ds.pairs[0][0]))):
        ds[0]


def test_size_mismatch(tmp_path):
    root = make_bdd100k(tmp_path / "bdd", n_per_split=1, size=(10, 20))
    ds = build_dataset("bdd100k", root, "val")
    _save(np.zeros((10, 21), np.uint8), ds.pairs[0][1])
    with pytest.raises(UserError) as e:
        ds[0]
    msg = str(e.value)
    assert str(ds.pairs[0][1]) in msg and "21x10" in msg and "20x10" in msg


def test_rgb_label_rejected(tmp_path):
    root = make_bdd100k(tmp_path / "bdd", n_per_split=1, size=(10, 20))
    ds = build_dataset("bdd100k", root, "val")
    _save(np.zeros((10, 20, 3), np.uint8), ds.pairs[0][1])
    with pytest.raises(UserError, match=re.escape(f"{ds.pairs[0][1]}: label image has mode RGB")):
        ds[0]


def test_palette_label_and_pickle(tmp_path):
    import pickle

    from srcr.data.transforms import build_train_transforms

    root = make_synthetic(tmp_path / "syn", n_per_split=1, size=(8, 12))
    t = build_train_transforms({"scale": [8, 12], "crop_size": [6, 6]})
    ds = build_dataset("synthetic", root, "train", transforms=t)
    raw = _grid_label([0, 1, 2, 3, 255], (8, 12))
    im = Image.fromarray(raw, mode="L").convert("P")  # palette PNG: the indices are the class ids
    im.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    im.save(ds.pairs[0][1])
    assert Image.open(ds.pairs[0][1]).mode == "P"
    np.testing.assert_array_equal(ds.load_label(0), raw)
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers under spawn
    assert torch.equal(clone[(0, 7)]["image"], ds[(0, 7)]["image"])
