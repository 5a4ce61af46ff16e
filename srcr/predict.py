"""`srcr predict`: a trained model on your own images, with `srcr evaluate`'s model loading and
inference (srcr.evaluate.load_model_for_eval, srcr.engine.inference.predict_label).

For each input image (any size), under OUT at the image's path relative to the folder it was
found in (an image given by name: its file name):

  NAME_label.png    8-bit class indices (the ignore value never appears)
  NAME_color.png    the classes in the dataset's palette
  NAME_overlay.png  the colours blended over the image
  NAME_offsets.png  with --offsets, for srm / fam / alignfa models: `srcr report`'s per-step offset
                    figure (and NAME_offsets.pdf)
  predict.json      the checkpoint, config, every image's outputs and notes, every failure

The model and the ``eval`` section (whole or sliding window, scales, flip) come from the run's
resolved config.yaml (or --config), with --set on top. Greyscale, alpha and 16-bit images are
converted to 8-bit RGB and noted; a file that cannot be read is listed with the reason and the
others go on; the exit status is 1 if any input failed. Every file is written atomically.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
OVERLAY_ALPHA = 0.5  # weight of the class colour over the image


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint file or run directory (its final.pth, else its newest checkpoint)",
    )
    parser.add_argument(
        "--input",
        required=True,
        nargs="+",
        action="extend",
        metavar="PATH",
        help="image files, folders and globs (quote globs: 'photos/*.jpg'); repeatable",
    )
    parser.add_argument(
        "--recursive", action="store_true", help="also read the sub-folders of folders"
    )
    parser.add_argument("--out", required=True, help="output folder (not an input folder)")
    parser.add_argument(
        "--config",
        default=None,
        help="run config (default: the run's config.yaml, else the one in the checkpoint)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry (repeatable), e.g. --set eval.flip=true",
    )
    parser.add_argument(
        "--offsets",
        action="store_true",
        help="also draw each alignment step's offsets (srm, fam, alignfa models)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar or progress lines"
    )


def run(args: argparse.Namespace) -> int:
    from .engine.distributed import pick_device
    from .utils.threads import set_threads

    cfg, ckpt_path = run_config(args.checkpoint, args.config, args.overrides)
    inputs, failures = collect_inputs(args.input, args.recursive)
    out = Path(args.out)
    check_out_dir(out, args.input, inputs)
    set_threads(args.threads)
    predictor = Predictor.load(cfg, ckpt_path, pick_device(args.device), offsets=args.offsets)
    summary = predict_all(predictor, inputs, out, failures, progress=not args.no_progress)
    print(summary_text(summary, out), file=sys.stderr)
    return 1 if summary["failed"] else 0


# ----------------------------------------------------------------------------------------------------
# configuration and checkpoint


def run_config(checkpoint: str, config: str | None, overrides: list[str]) -> tuple[dict, Path]:
    """(resolved config, checkpoint file): --config, else RUN/config.yaml, else the checkpoint's."""
    from .config import load_config, resolve_config
    from .engine.checkpoint import load_checkpoint
    from .evaluate import resolve_checkpoint

    ckpt_path = resolve_checkpoint(checkpoint)
    if config is not None:
        return load_config(config, overrides), ckpt_path
    saved = run_config_file(Path(checkpoint), ckpt_path)
    if saved is not None:
        return load_config(saved, overrides), ckpt_path
    held = load_checkpoint(ckpt_path).get("config")
    if not isinstance(held, dict):
        raise UserError(
            f"{ckpt_path}: no config.yaml in its run directory and none inside the "
            f"checkpoint; pass the run config with --config"
        )
    return resolve_config(held, overrides, f"the config inside {ckpt_path}"), ckpt_path


def run_config_file(given: Path, ckpt_path: Path) -> Path | None:
    """The resolved config.yaml `srcr train` wrote into the run directory, if there is one."""
    run_dir = given if given.is_dir() else ckpt_path.parent
    if run_dir.name == "checkpoints":
        run_dir = run_dir.parent
    path = run_dir / "config.yaml"
    return path if path.is_file() else None


def palette_of(cfg: dict) -> tuple[list[list[int]], str | None]:
    """The dataset's palette (one colour per class) and a note when a default had to stand in."""
    from .data import dataset_classes
    from .data.folder import DEFAULT_PALETTE

    data, n = cfg["data"], int(cfg["model"]["num_classes"])
    try:
        classes, palette = dataset_classes(data["dataset"], data["root"])
    except UserError as e:
        if data["dataset"] != "synthetic":
            return DEFAULT_PALETTE[:n], f"default palette ({e})"
        from .data.synthetic_gen import CLASSES, PALETTE

        classes, palette = CLASSES, [list(c) for c in PALETTE]
    if len(classes) != n:
        raise UserError(
            f"model.num_classes is {n} but the {data['dataset']} dataset at {data['root']} "
            f"has {len(classes)} classes ({', '.join(classes[:5])}, ...): the config does not "
            f"match the checkpoint's dataset"
        )
    return palette, None


# ----------------------------------------------------------------------------------------------------
# inputs


@dataclass
class Input:
    path: Path
    rel: Path  # where its outputs go under OUT (without the extension)


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob_base(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard (relative paths start there)."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _has_magic(p))]]
    return Path(*fixed) if fixed else Path(".")


def _folder_files(folder: Path, recursive: bool) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        f
        for f in files
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
    )


def collect_inputs(specs: list[str], recursive: bool) -> tuple[list[Input], list[dict]]:
    """Every image the --input values name, with its relative output path; inputs that name
    nothing are failures ({"path", "reason"}). Two images with one output path: a UserError."""
    inputs: list[Input] = []
    failures: list[dict] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = _folder_files(path, recursive)
            if not files:
                failures.append(
                    {
                        "path": spec,
                        "reason": "folder holds no image files "
                        f"({', '.join(IMAGE_EXTENSIONS)})"
                        + ("" if recursive else "; --recursive reads sub-folders"),
                    }
                )
            inputs += [Input(f, f.relative_to(path).with_suffix("")) for f in files]
        elif path.exists():
            inputs.append(Input(path, Path(path.stem)))
        elif _has_magic(spec):
            base = _glob_base(spec)
            files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not files:
                failures.append({"path": spec, "reason": "no file matches this pattern"})
            inputs += [Input(f, f.relative_to(base).with_suffix("")) for f in files]
        else:
            failures.append({"path": spec, "reason": "no such file or folder"})
    _check_unique(inputs)
    return inputs, failures


def _check_unique(inputs: list[Input]) -> None:
    seen: dict[Path, Path] = {}
    for item in inputs:
        other = seen.setdefault(item.rel, item.path)
        if other != item.path:
            raise UserError(
                f"{other} and {item.path} would both write {item.rel}_label.png: give their "
                f"folders as --input so that their relative paths tell them apart"
            )


def check_out_dir(out: Path, specs: list[str], inputs: list[Input]) -> None:
    """Outputs never go into an input folder, nor below a folder given as input (a later
    --recursive run would read them as images)."""
    target = out.resolve()
    given = {Path(s).resolve() for s in specs if Path(s).is_dir()}
    holding = {item.path.resolve().parent for item in inputs}
    for folder in sorted(given | holding):
        if target == folder or (folder in given and folder in target.parents):
            raise UserError(
                f"--out {out} is the input folder {folder} or inside it; choose an output "
                f"folder outside the inputs"
            )


@dataclass
class Decoded:
    rgb: object  # uint8 H x W x 3
    notes: list[str] = field(default_factory=list)


def read_rgb(path: Path) -> Decoded:
    """An image as 8-bit RGB; greyscale, alpha, palette and 16-bit images are converted (noted).
    Unreadable files raise UserError with the reason."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            # Pillow reads 16-bit RGB(A) as 8-bit RGB(A) (the high bytes): only the tile says so
            deep = im.mode in ("RGB", "RGBA") and any("16" in str(t[3]) for t in im.tile)
            im.load()
            decoded = _to_rgb(im, np)
    except UnidentifiedImageError:
        raise UserError("not an image (no image format recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"cannot decode ({type(e).__name__}: {e})") from None
    if deep:
        decoded.notes.insert(0, "16 bits per channel reduced to 8")
    return decoded


def _to_rgb(im, np) -> Decoded:
    if im.mode == "RGB":
        return Decoded(np.asarray(im, dtype=np.uint8).copy())
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.float64)
        if im.mode == "I" and arr.max() <= 255:
            grey, note = arr, "32-bit greyscale converted to RGB"
        else:
            grey, note = (
                arr / 257.0,
                f"16-bit greyscale ({im.mode}) scaled to 8 bits and converted to RGB",
            )
        grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
        return Decoded(np.repeat(grey[..., None], 3, axis=2), [note])
    notes = {
        "L": "greyscale converted to RGB",
        "LA": "greyscale with alpha: alpha dropped",
        "RGBA": "RGBA: alpha dropped",
        "P": "palette image converted to RGB",
        "PA": "palette image with alpha: alpha dropped",
        "1": "1-bit image converted to RGB",
        "CMYK": "CMYK converted to RGB",
    }
    note = notes.get(im.mode, f"mode {im.mode} converted to RGB")
    if im.mode == "P" and "transparency" in im.info:
        note = "palette image with transparency: transparency dropped"
    return Decoded(np.asarray(im.convert("RGB"), dtype=np.uint8).copy(), [note])


# ----------------------------------------------------------------------------------------------------
# prediction


@dataclass
class Predictor:
    """A checkpoint's model with the config's eval settings and the dataset's palette."""

    cfg: dict
    model: object
    device: object
    palette: list
    ckpt_path: Path
    offsets: bool = False
    notes: list = field(default_factory=list)

    @classmethod
    def load(cls, cfg: dict, ckpt_path: Path, device, offsets: bool = False) -> Predictor:
        """Everything that can fail on a bad checkpoint or config fails here, before any image."""
        from .engine.checkpoint import load_checkpoint
        from .evaluate import check_config_mismatch, load_model_for_eval
        from .module_names import OFFSET_ALIGNS

        palette, note = palette_of(cfg)
        # verified against its checksum; model settings other than the checkpoint's are refused
        ckpt = load_checkpoint(ckpt_path, map_location="cpu")
        check_config_mismatch(ckpt, cfg, ckpt_path, allow=False)
        model, _ = load_model_for_eval(cfg, ckpt_path, device, ckpt=ckpt)
        notes = [note] if note else []
        if offsets and cfg["model"]["align"] not in OFFSET_ALIGNS:
            notes.append(f"--offsets: a {cfg['model']['align']} model has no offsets; none drawn")
            offsets = False
        return cls(cfg, model, device, palette, ckpt_path, offsets, notes)

    def label(self, rgb):
        """uint8 H x W class map of an 8-bit RGB image; (with offsets) the offsets as well."""
        import numpy as np
        import torch

        from .data.transforms import build_eval_transforms
        from .engine.inference import model_offsets, predict_label, scaled_input

        data, ev = self.cfg["data"], self.cfg["eval"]
        h, w = rgb.shape[:2]
        # the original size: predict_label resizes for eval.scale / eval.size_divisor itself
        tf = build_eval_transforms(None, mean=data["mean"], std=data["std"])
        norm, _ = tf(rgb, np.zeros((h, w), np.uint8), np.random.default_rng(0))
        x = torch.from_numpy(np.ascontiguousarray(norm.transpose(2, 0, 1), dtype=np.float32))[None]
        x = x.to(self.device)
        with torch.no_grad():
            pred = predict_label(self.model, x, (h, w), self.cfg).numpy().astype(np.uint8)
            offsets = (
                model_offsets(self.model, scaled_input(x, ev["scale"], 1.0, ev["size_divisor"]))
                if self.offsets
                else None
            )
        return pred, offsets


def colorize(pred, palette):
    """uint8 H x W x 3: each pixel its class's palette colour."""
    import numpy as np

    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8).reshape(-1, 3)
    return lut[pred]


def overlay(rgb, color):
    import numpy as np

    mixed = (1 - OVERLAY_ALPHA) * rgb.astype(np.float32) + OVERLAY_ALPHA * color.astype(np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def write_outputs(p: Predictor, out: Path, item: Input, rgb, pred, offsets) -> list[str]:
    """The PNGs (and offset figure) of one image, each written atomically; their paths."""
    from PIL import Image

    from .evaluate import _save_png

    stem = out / item.rel
    color = colorize(pred, p.palette)
    images = {
        "label": Image.fromarray(pred),
        "color": Image.fromarray(color),
        "overlay": Image.fromarray(overlay(rgb, color)),
    }
    written = []
    for kind, image in images.items():
        path = stem.parent / f"{stem.name}_{kind}.png"
        _save_png(path, image)
        written.append(str(path))
    if offsets:
        written += [str(f) for f in _offset_figure(p, item, rgb, pred, offsets, stem)]
    return written


def _offset_figure(p: Predictor, item: Input, rgb, pred, offsets: dict, stem: Path) -> list[Path]:
    import numpy as np

    from .report.offset_vis import draw_offset_figure
    from .report.offsets import offsets_from_arrays

    arrays = {k: v[None] for k, v in offsets.items()}
    arrays.update(image_ids=np.array([str(item.path)]), pred=pred[None], image=rgb[None])
    model = p.cfg["model"]
    title = f"{item.path.name}: {model['align']} + {model['context']} ({p.ckpt_path})"
    return draw_offset_figure(
        offsets_from_arrays(arrays),
        model["align"],
        0,
        title,
        int(model["num_classes"]),
        1.0,
        stem.parent / f"{stem.name}_offsets",
    )


def predict_all(
    p: Predictor, inputs: list[Input], out: Path, failures: list[dict], progress: bool = True
) -> dict:
    """Predict every input; returns (and writes as OUT/predict.json) the summary."""
    from .evaluate import code_version, file_sha256
    from .utils.io import write_json

    done, bar, t0 = [], _Progress(len(inputs), progress), time.perf_counter()
    for item in inputs:
        try:
            decoded = read_rgb(item.path)
        except UserError as e:
            failures.append({"path": str(item.path), "reason": str(e)})
            bar.step(item, f"FAILED: {e}")
            continue
        pred, offsets = p.label(decoded.rgb)
        outputs = write_outputs(p, out, item, decoded.rgb, pred, offsets)
        h, w = pred.shape
        done.append(
            {"input": str(item.path), "size": [h, w], "outputs": outputs, "notes": decoded.notes}
        )
        bar.step(item, "; ".join(decoded.notes))
    bar.close()
    summary = {
        "checkpoint": {"path": str(p.ckpt_path.resolve()), "sha256": file_sha256(p.ckpt_path)},
        "device": str(p.device),
        "notes": p.notes,
        "seconds": round(time.perf_counter() - t0, 3),
        "predicted": done,
        "failed": failures,
        "code_version": code_version(),
        "config": p.cfg,
    }
    write_json(out / "predict.json", summary)
    return summary


class _Progress:
    """A bar on a terminal; one plain line per image otherwise (a log file)."""

    def __init__(self, total: int, enabled: bool):
        from .engine.progress import PlainProgress, progress_bar

        self.enabled = enabled
        self.bar = progress_bar(total, "predict", unit="img", enabled=enabled)
        self.plain = PlainProgress(total, "predict")
        self.i = 0

    def step(self, item: Input, note: str) -> None:
        from .engine.progress import format_eta

        self.i += 1
        if self.bar is not None:
            if note:
                self.bar.write(f"{item.path}: {note}", file=sys.stderr)
            self.bar.update(1)
        elif self.enabled:
            eta = self.plain.eta(self.i)
            pct = 100.0 * self.i / max(self.plain.total, 1)
            line = f"predict: image {self.i}/{self.plain.total} ({pct:.0f}%) {item.path}"
            line += (f" | {note}" if note else "") + (
                f" | ETA {format_eta(eta)}" if eta is not None else ""
            )
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary_text(summary: dict, out: Path) -> str:
    done, failed = summary["predicted"], summary["failed"]
    converted = sum(1 for d in done if d["notes"])
    lines = [
        f"predict: {len(done)} image(s) predicted -> {out} ({summary['seconds']:.1f} s), "
        f"{converted} converted, {len(failed)} failed"
    ]
    lines += [f"  note: {n}" for n in summary["notes"]]
    lines += [f"  converted {d['input']}: {'; '.join(d['notes'])}" for d in done if d["notes"]]
    lines += [f"  FAILED {f['path']}: {f['reason']}" for f in failed]
    return "\n".join(lines)
