"""`srcr evaluate`: score a checkpoint on a validation split and write every output atomically.

EVAL_DIR/
  metrics.json      all figures (srcr.metrics.SegEvaluator), the resolved config, the checkpoint (path,
                    sha256, iteration), dataset, split, inference settings, code version, conventions
  per_class.csv     class, IoU, Acc, BF@t, BIoU, band/interior IoU per trimap width
  per_image.npz     per-image counts (SegEvaluator.save_per_image), for bootstrap intervals
  vis/NAME.png      image | label | prediction | error (white = wrong, grey = ignored) panels
  vis/NAME_pred.png the prediction as a palette PNG
  offsets.npz       for srm / fam / alignfa: each alignment step's offsets on the first
                    eval.offset_images validation images (whole-image forward), STEP_KIND (N, C, h, w);
                    with their label (N, H, W), pred (N, H, W) and image (N, H, W, 3), uint8 at
                    label size (files written before these keys existed lack them)

metrics.json is written last: its presence with the same checkpoint hash and config marks the
directory complete, and a repeated call then does nothing.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .module_names import OFFSET_ALIGNS
from .utils.io import file_sha256  # noqa: F401 (srcr.evaluate.file_sha256, as before)


def configure(parser: argparse.ArgumentParser) -> None:
    from .cli_runs import add_set_and_run

    parser.add_argument(
        "--config", required=True, help="YAML config the checkpoint was trained with"
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint file (RUN/checkpoints/final.pth) or a run directory",
    )
    parser.add_argument("--out", default=None, help="evaluation directory")
    add_set_and_run(
        parser,
        ("CHECKPOINT", "OUT"),
        run_help="instead of --checkpoint and --out: one of several checkpoints evaluated in "
        "this process on one pass over the images (they must share data, eval.split "
        "and eval.scale; a frozen, equal backbone's forward is shared)",
        set_help="override a config entry (repeatable), e.g. --set eval.flip=true",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--allow-config-mismatch",
        action="store_true",
        help="evaluate even where the config's model settings (or data.mean/std) "
        "differ from those the checkpoint was trained with; metrics.json "
        "records the differences under config_mismatch",
    )


def run(args: argparse.Namespace) -> int:
    from .cli_runs import run_configs
    from .utils.threads import set_threads

    single = (args.checkpoint, args.out)
    if args.runs and any(single) or not args.runs and not all(single):
        raise UserError(
            "srcr evaluate: give either --checkpoint and --out, or one --run CHECKPOINT OUT per run"
        )
    runs = args.runs or [(list(single), [])]
    specs = [
        (cfg, ckpt, Path(out))
        for cfg, (ckpt, out) in run_configs(args.config, args.overrides, runs)
    ]
    set_threads(args.threads)
    evaluate_runs(
        specs,
        device=args.device,
        progress=not args.no_progress,
        allow_config_mismatch=args.allow_config_mismatch,
    )
    return 0


# ----------------------------------------------------------------------------------------------------
# helpers


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (its final.pth, else its newest iteration checkpoint)."""
    from .engine.checkpoint import FINAL_NAME, latest_checkpoint

    path = Path(path)
    if path.is_dir():
        for cand in (path / "checkpoints" / FINAL_NAME, path / FINAL_NAME):
            if cand.is_file():
                return cand
        newest = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if newest is None:
            raise UserError(
                f"{path}: no checkpoint found (expected checkpoints/final.pth or iter_*.pth)"
            )
        return newest
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return path


@functools.lru_cache(maxsize=1)
def _git_describe() -> str | None:
    """Once per process: a pass over many checkpoints would otherwise run git for each."""
    try:
        res = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else None


def code_version() -> dict:
    from . import __version__

    return {"srcr": __version__, "git": _git_describe()}


def _json_safe(obj: Any) -> Any:
    """NaN / inf -> null (strict JSON); a class left out of a mean is listed under left_out."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _fmt(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"


def per_class_rows(results: dict, classes: list[str]) -> tuple[list[str], list[list[str]]]:
    """per_class.csv: class, IoU, Acc, BF@t (each tolerance), BIoU, band/interior IoU per width.
    Empty cells: a class left out (zero union / absent from the labels)."""
    bf_keys = [k for k in results if k.startswith("BF@")]
    header = ["class", "IoU", "Acc"] + bf_keys + (["BIoU"] if "BIoU" in results else [])
    trimap = results.get("trimap", {})
    for w in trimap:
        tag = f"{w:g}" if isinstance(w, (int, float)) else str(w)
        header += [f"band_IoU@{tag}", f"interior_IoU@{tag}"]
    rows = []
    for c, name in enumerate(classes):
        row = [name, _fmt(results["IoU"][c]), _fmt(results["Acc"][c])]
        row += [_fmt(results[k][c]) for k in bf_keys]
        if "BIoU" in results:
            row.append(_fmt(results["BIoU"][c]))
        for w in trimap:
            row += [_fmt(trimap[w]["band_IoU"][c]), _fmt(trimap[w]["interior_IoU"][c])]
        rows.append(row)
    return header, rows


def _colorize(index_map, palette):
    import numpy as np

    lut = np.zeros((256, 3), np.uint8)
    pal = np.asarray(palette, np.uint8).reshape(-1, 3)[:255]
    lut[: len(pal)] = pal
    return lut[np.asarray(index_map, np.int64).clip(0, 255)]


def vis_panel(image_chw, label, pred, palette, mean, std, ignore_index=255):
    """One RGB strip: image | label | prediction | error map (white = wrong, black = right, grey = ignored)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    h, w = label.shape
    img = image_chw.float()[None]
    if tuple(img.shape[-2:]) != (h, w):  # eval.scale resized the image: show it at label size
        img = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    rgb = (img * s + m).clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    label = np.asarray(label)
    pred = np.asarray(pred)
    err = np.where(pred != label, 255, 0).astype(np.uint8)
    err[label == ignore_index] = 128
    lab_rgb = _colorize(label, palette)
    lab_rgb[label == ignore_index] = 0
    sep = np.full((h, 2, 3), 255, np.uint8)
    return np.concatenate(
        [
            rgb,
            sep,
            lab_rgb,
            sep,
            _colorize(pred, palette),
            sep,
            np.repeat(err[..., None], 3, axis=2),
        ],
        axis=1,
    )


def _display_image(image_chw, size, mean, std):
    """The normalised network input as uint8 H x W x 3 at label size (as in the vis panels)."""
    import torch
    import torch.nn.functional as F

    img = image_chw.float()[None]
    if tuple(img.shape[-2:]) != tuple(size):
        img = F.interpolate(img, size=size, mode="bilinear", align_corners=False)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (img * s + m).clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


def _save_png(path: Path, image) -> None:
    from .utils.io import atomic_path

    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _save_npz(path: Path, arrays: dict) -> None:
    import numpy as np

    from .utils.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez_compressed(f, **arrays)


def _spread(n_items: int, k: int) -> list[int]:
    """k indices spread evenly over range(n_items) (first and last included)."""
    if k <= 0 or n_items <= 0:
        return []
    if k >= n_items:
        return list(range(n_items))
    return sorted({round(i * (n_items - 1) / (k - 1)) for i in range(k)} if k > 1 else {0})


def _is_complete(out: Path, sha: str, cfg: dict) -> bool:
    """metrics.json for this checkpoint and config, and every output beside it readable."""
    import json

    from .metrics import load_per_image

    path = out / "metrics.json"
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return False
    if not (
        old.get("checkpoint", {}).get("sha256") == sha
        and old.get("config") == _json_safe(cfg)
        and (out / "per_class.csv").is_file()
    ):
        return False
    try:
        load_per_image(out / "per_image.npz")
        if cfg["model"]["align"] in OFFSET_ALIGNS and int(cfg["eval"]["offset_images"]) > 0:
            _check_npz(out / "offsets.npz")
    except UserError as e:
        print(f"{e}: evaluating {out} again", file=sys.stderr)
        return False
    return True


def _check_npz(path: Path) -> None:
    """Read every array of an npz (a truncated one fails on the first damaged member)."""
    import zipfile
    import zlib

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                z[k]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({type(e).__name__}: {e})") from None


# What an evaluation writes beside metrics.json: removed before it is redone and when it fails, so
# no output of another evaluation (or half of this one) stays beside a metrics.json or without one
EVAL_OUTPUTS = ("per_image.npz", "per_class.csv", "offsets.npz", "vis")


def _clear_outputs(out: Path) -> None:
    """metrics.json (the completion marker) first, then the other outputs of an evaluation."""
    import shutil

    (out / "metrics.json").unlink(missing_ok=True)
    for name in EVAL_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


# What the model computes from an image: every model setting (the checkpoint holds every weight, so
# model.pretrained does not count) and the input normalisation. Evaluating a checkpoint with other
# values keeps the weight shapes but scores another model (e.g. model.coarse_shift, align_options).
EVAL_MODEL_KEYS = ("model", "data.mean", "data.std")
EVAL_MODEL_IGNORED = ("model.pretrained",)


def config_mismatch(ckpt: dict, cfg: dict) -> dict[str, dict]:
    """{key: {"checkpoint": value, "requested": value}} for each of EVAL_MODEL_KEYS in which ``cfg``
    differs from the config stored in ``ckpt`` (defaults filled in, as for any config); empty
    for a checkpoint without a stored config (a foreign one)."""
    from .config import _deep_merge, config_diff_under, defaults, flatten

    stored = ckpt.get("config")
    if not isinstance(stored, dict):
        return {}
    stored = _deep_merge(defaults(), stored)
    diff = config_diff_under(stored, cfg, EVAL_MODEL_KEYS, ignore=EVAL_MODEL_IGNORED)
    fs, fc = flatten(stored), flatten(cfg)
    return {
        k: {"checkpoint": fs.get(k, "<absent>"), "requested": fc.get(k, "<absent>")} for k in diff
    }


def check_config_mismatch(ckpt: dict, cfg: dict, ckpt_path: Path, allow: bool) -> dict[str, dict]:
    """The mismatch of :func:`config_mismatch`; a UserError naming each key and both values unless
    ``allow`` (then a warning)."""
    mismatch = config_mismatch(ckpt, cfg)
    if mismatch:
        lines = "\n  ".join(
            f"{k}: checkpoint {v['checkpoint']!r}, requested {v['requested']!r}"
            for k, v in mismatch.items()
        )
        if not allow:
            raise UserError(
                f"{ckpt_path} was trained with other settings of what the model "
                f"computes; evaluating it so would score another model:\n  {lines}\n"
                f"use the "
                f"checkpoint's values, or pass --allow-config-mismatch (recorded in "
                f"metrics.json)"
            )
        print(
            f"warning: evaluating {ckpt_path} with settings other than its own "
            f"(--allow-config-mismatch):\n  {lines}",
            file=sys.stderr,
        )
    return mismatch


def load_model_for_eval(
    cfg: dict, ckpt_path: Path, device, ckpt: dict | None = None
) -> tuple[Any, dict]:
    """The model of ``cfg`` with the checkpoint's weights (UserError naming config differences)."""
    import torch

    from .config import config_diff
    from .engine.checkpoint import load_checkpoint, model_state_from
    from .models.segmentor import build_model

    if ckpt is None:
        ckpt = load_checkpoint(ckpt_path, map_location="cpu")
    state = model_state_from(ckpt, ckpt_path)
    torch.manual_seed(int(cfg["seed"]))
    # the checkpoint holds every weight: no need for (or dependence on) the backbone's init file
    model = build_model({**cfg["model"], "pretrained": None})
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        hint = ""
        if isinstance(ckpt.get("config"), dict) and "model" in ckpt["config"]:
            diff = config_diff({"model": ckpt["config"]["model"]}, {"model": cfg["model"]})
            if diff:
                hint = (
                    f"; the checkpoint was trained with different model settings: {', '.join(diff)}"
                )
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"{ckpt_path}: weights do not fit the config's model ({first}){hint}"
        ) from None
    # frozen (no grads, eval mode): several checkpoints on one backbone can then share its forward
    return model.requires_grad_(False).to(device).eval(), ckpt


# ----------------------------------------------------------------------------------------------------


def evaluate(
    cfg: dict,
    checkpoint: str | Path,
    out: Path,
    device: str = "auto",
    progress: bool = True,
    allow_config_mismatch: bool = False,
) -> dict:
    """Evaluate ``checkpoint`` with ``cfg``'s eval settings; returns the metrics.json content."""
    return evaluate_runs(
        [(cfg, checkpoint, Path(out))],
        device=device,
        progress=progress,
        allow_config_mismatch=allow_config_mismatch,
    )[0]


# Config keys every checkpoint evaluated in one pass shares: they decide the images and labels
EVAL_GROUP_KEYS = ("data", "eval.split", "eval.scale")


def evaluate_runs(
    specs: list[tuple[dict, str | Path, Path]],
    device: str = "auto",
    progress: bool = True,
    allow_config_mismatch: bool = False,
) -> list[dict]:
    """Evaluate each (config, checkpoint, eval directory) of ``specs`` in one pass over the
    validation images (they must agree on EVAL_GROUP_KEYS); on frozen, equal backbones the backbone
    runs once per input (srcr.models.feature_cache). Each directory ends exactly as an evaluation of
    its own would leave it, apart from its timing (tests/test_evaluate.py). Every checkpoint's
    stored config is compared with its requested one (EVAL_MODEL_KEYS) before anything runs; a
    difference is refused unless ``allow_config_mismatch``. Returns the metrics.json contents, in
    order."""
    import json

    from .engine.checkpoint import load_checkpoint
    from .engine.distributed import pick_device
    from .models.feature_cache import share_backbone

    records: list[dict | None] = []
    runs: list[_EvalRun] = []
    for cfg, checkpoint, out in specs:
        ckpt_path = resolve_checkpoint(checkpoint)
        sha = file_sha256(ckpt_path)
        ckpt = load_checkpoint(ckpt_path, map_location="cpu", sha=sha)
        mismatch = check_config_mismatch(ckpt, cfg, ckpt_path, allow_config_mismatch)
        if _is_complete(Path(out), sha, cfg):
            print(f"evaluation in {out} is already complete for {ckpt_path}", file=sys.stderr)
            records.append(json.loads((Path(out) / "metrics.json").read_text()))
        else:
            records.append(None)
            runs.append(_EvalRun(cfg, Path(out), ckpt_path, sha, ckpt=ckpt, mismatch=mismatch))
    if runs:
        _check_eval_group(runs)
        dev = pick_device(device)
        ds = _eval_dataset(runs[0].cfg)
        for r in runs:
            _start(r, ds, dev)
        if share_backbone([r.model for r in runs]) is not None:
            print(
                f"{len(runs)} checkpoints share one frozen backbone: its forward runs once per input",
                file=sys.stderr,
            )
        for r in runs:
            _clear_outputs(r.out)
        try:
            fresh = iter(_evaluate_pass(runs, ds, dev, progress))
        except BaseException:
            for r in runs:  # a failed (or interrupted) pass leaves nothing a later run could take
                if not r.done:
                    _clear_outputs(r.out)
            raise
        records = [rec if rec is not None else next(fresh) for rec in records]
    return records


def _evaluate_pass(runs: list[_EvalRun], ds, dev, progress: bool) -> list[dict]:
    """One pass over the images for every run, then each run's outputs (metrics.json last)."""
    import torch

    from .engine.progress import progress_bar

    name = runs[0].out.name if len(runs) == 1 else f"{len(runs)} runs"
    bar = progress_bar(len(ds), f"evaluate {name}", unit="img", enabled=progress)  # a terminal only
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            image = item["image"][None].to(dev)
            for r in runs:
                _eval_image(r, i, item, image, ds)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return [_finish(r, ds, dev) for r in runs]


@dataclass
class _EvalRun:
    """One checkpoint of an evaluation pass: what it needs and what it has gathered so far."""

    cfg: dict
    out: Path
    ckpt_path: Path
    sha: str
    model: Any = None
    ckpt: dict | None = None
    evaluator: Any = None
    vis_idx: set = field(default_factory=set)
    off_idx: set = field(default_factory=set)
    offsets: list = field(default_factory=list)
    off_ids: list = field(default_factory=list)
    seconds: float = 0.0  # this checkpoint's own inference and scoring
    mismatch: dict = field(default_factory=dict)  # allowed differences from the checkpoint's config
    done: bool = False  # metrics.json written


def _check_eval_group(runs: list[_EvalRun]) -> None:
    from .cli_runs import check_distinct
    from .config import config_diff_under

    check_distinct([r.out for r in runs], "evaluation")
    lead = runs[0]
    for r in runs[1:]:
        diff = config_diff_under(lead.cfg, r.cfg, EVAL_GROUP_KEYS)
        if diff:
            raise UserError(
                f"--run {r.ckpt_path} {r.out} cannot be evaluated in one pass with {lead.out}: "
                f"checkpoints of one pass see the same images, so they must agree on "
                f"{', '.join(EVAL_GROUP_KEYS)}; they differ in {', '.join(diff)}"
            )


def _eval_dataset(cfg: dict):
    """The evaluated split (generating the synthetic set if needed), checked against the model."""
    from .data import build_dataset
    from .data.transforms import build_eval_transforms

    data, ev = cfg["data"], cfg["eval"]
    if data["dataset"] == "synthetic":
        from .data.synthetic_gen import ensure_synthetic

        syn = data["synthetic"]
        ensure_synthetic(
            data["root"], syn["n_train"], syn["n_val"], tuple(syn["size"]), syn["seed"]
        )
    # images at their original size: every test scale resizes them afresh (predict_probs)
    ds = build_dataset(
        data["dataset"],
        data["root"],
        ev["split"],
        transforms=build_eval_transforms(None, mean=data["mean"], std=data["std"]),
    )
    if len(ds) == 0:
        raise UserError(f"{data['root']}: the {ev['split']} split is empty")
    return ds


def _start(r: _EvalRun, ds, dev) -> None:
    """Load the checkpoint's model and set up its scoring."""
    from .metrics import SegEvaluator

    cfg, ev = r.cfg, r.cfg["eval"]
    num_classes = int(cfg["model"]["num_classes"])
    if ds.num_classes != num_classes:
        raise UserError(
            f"model.num_classes is {num_classes} but the {cfg['data']['dataset']} dataset at "
            f"{cfg['data']['root']} has {ds.num_classes} classes"
        )
    r.model, r.ckpt = load_model_for_eval(cfg, r.ckpt_path, dev, ckpt=r.ckpt)
    r.evaluator = SegEvaluator(
        num_classes,
        ignore_index=ds.ignore_index,
        bf_tolerances=ev["bf_tolerances"],
        biou_width=ev["biou_width"],
        trimap_widths=ev["trimap_widths"],
        gscnn=ev["gscnn"],
        class_names=ds.classes,
    )
    r.vis_idx = set(_spread(len(ds), int(ev["num_vis"])))
    if cfg["model"]["align"] in OFFSET_ALIGNS:
        r.off_idx = set(range(min(int(ev["offset_images"]), len(ds))))


def _eval_image(r: _EvalRun, i: int, item: dict, image, ds) -> None:
    """Predict and score image ``i`` for one checkpoint; its panels and offsets if it is one of those."""
    import numpy as np

    from .engine.inference import model_offsets, predict_label, scaled_input

    t0 = time.perf_counter()
    data = r.cfg["data"]
    label = item["label"]
    pred = predict_label(r.model, image, tuple(label.shape), r.cfg)
    name = Path(item["path"]).stem
    r.evaluator.update(pred, label, names=[name])
    if i in r.vis_idx:
        _save_vis(r.out, name, item["image"], label.numpy(), pred.numpy(), ds, data)
    if i in r.off_idx:
        # a whole-image forward at the single-scale test size: offsets on this image's full grid
        ev = r.cfg["eval"]
        rec = model_offsets(r.model, scaled_input(image, ev["scale"], 1.0, ev["size_divisor"]))
        # what `srcr report` needs beside the offsets (offset correctness, panels): the label, the
        # prediction and the image (uint8 at label size), so it never re-reads data
        rec.update(
            label=label.numpy().astype(np.uint8),
            pred=pred.numpy().astype(np.uint8),
            image=_display_image(item["image"], tuple(label.shape), data["mean"], data["std"]),
        )
        r.offsets.append(rec)
        r.off_ids.append(item["path"])
    r.seconds += time.perf_counter() - t0


def _save_vis(out: Path, name: str, image_chw, label, pred, ds, data: dict) -> None:
    """vis/NAME.png (image | label | prediction | error) and vis/NAME_pred.png (palette PNG)."""
    import numpy as np
    from PIL import Image

    panel = vis_panel(
        image_chw, label, pred, ds.palette, data["mean"], data["std"], ds.ignore_index
    )
    _save_png(out / "vis" / f"{name}.png", Image.fromarray(panel))
    pal_img = Image.fromarray(pred.astype(np.uint8), mode="P")
    flat = [v for rgb in ds.palette for v in rgb]
    pal_img.putpalette(flat + [0] * (768 - len(flat)))
    _save_png(out / "vis" / f"{name}_pred.png", pal_img)


def _finish(r: _EvalRun, ds, dev) -> dict:
    """Per-image counts, per-class table, offsets, then metrics.json (the completion marker)."""
    from .utils.io import write_json, write_text

    t0 = time.perf_counter()
    cfg, data, ev = r.cfg, r.cfg["data"], r.cfg["eval"]
    results = r.evaluator.compute()
    r.seconds += time.perf_counter() - t0
    r.evaluator.save_per_image(r.out / "per_image.npz")
    header, rows = per_class_rows(results, ds.classes)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(r.out / "per_class.csv", buf.getvalue())
    if r.offsets:
        _save_npz(r.out / "offsets.npz", _offset_arrays(r.offsets, r.off_ids))
    record = {
        "metrics": results,
        "checkpoint": {
            "path": str(r.ckpt_path.resolve()),
            "sha256": r.sha,
            "iteration": r.ckpt.get("iteration"),
        },
        "dataset": {
            "name": data["dataset"],
            "root": str(data["root"]),
            "split": ev["split"],
            "num_images": len(ds),
            "classes": list(ds.classes),
        },
        "inference": {
            k: ev[k]
            for k in (
                "mode",
                "crop_size",
                "stride",
                "scale",
                "size_divisor",
                "flip",
                "scales",
                "preset",
            )
        },
        "conventions": {
            "metrics": results.get("convention"),
            "prediction": "softmax probabilities of every (scale, flip) pass resized to the label size "
            "(bilinear, align_corners=False) and averaged, then argmax; scores in percent; "
            "null = class left out of the mean (see metrics.left_out)",
            "offsets": "pixels of each step's fine grid, channel 0 = x, 1 = y",
        },
        "code_version": code_version(),
        "device": str(dev),
        "seconds": round(r.seconds, 3),
        "config": cfg,
    }
    if r.mismatch:  # evaluated with --allow-config-mismatch
        record["config_mismatch"] = {"allowed": True, "keys": r.mismatch}
    record = _json_safe(record)
    write_json(r.out / "metrics.json", record)
    r.done = True
    print(
        f"{data['dataset']} {ev['split']}: mIoU {results['mIoU']:.2f}, "
        f"mBF@3 {results.get('mBF@3', float('nan')):.2f} ({len(ds)} images) -> {r.out}",
        file=sys.stderr,
    )
    return record


def _offset_arrays(offsets: list[dict], ids: list[str]) -> dict:
    """Stack per-image offsets as KEY (N, ...) when all images share a size, else KEY_i per image."""
    import numpy as np

    arrays: dict = {"image_ids": np.array(ids, dtype=str)}
    keys = list(offsets[0])
    for key in keys:
        items = [o[key] for o in offsets]
        if all(a.shape == items[0].shape for a in items):
            arrays[key] = np.stack(items)
        else:
            for i, a in enumerate(items):
                arrays[f"{key}_{i}"] = a
    return arrays
