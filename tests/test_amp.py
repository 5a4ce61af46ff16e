"""The bf16 path rehearsed on the CPU: ``train.amp: always`` opens the autocast that ``train.amp``
opens on CUDA (srcr.engine.amp), through srcr.train's own training step, for every alignment
module, every context module and the contrastive loss. Losses stay finite; offsets, sampling grids,
softmaxes and the loss's log-softmax see fp32 tensors; a checkpoint written under autocast reloads
and evaluates (under autocast too)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.overrides import TorchFunctionMode
from train_helpers import tiny_overrides

from srcr.config import load_config
from srcr.engine.amp import amp_enabled, autocast
from srcr.engine.distributed import DistContext
from srcr.engine.inference import predict_probs
from srcr.losses import build_criterion
from srcr.models import ALIGN_MODULES, CONTEXT_MODULES
from srcr.train import _build_run, _train_step

# every function whose inputs the README promises to keep in fp32 under autocast
FP32_FUNCS = ("softmax", "log_softmax", "grid_sample", "cross_entropy", "nll_loss")


# output channels of the offset convs: x and y (FAM, AlignFA), and SRM's merged 2 + 3x3 weights
OFFSET_CONV_OUT = (2, 2 + 9)


class DtypeRecorder(TorchFunctionMode):
    """Records the floating dtypes of the tensor inputs of FP32_FUNCS calls, as the code passes them
    (before autocast could recast them)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, torch.dtype]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "conv2d" and args[1].shape[0] in OFFSET_CONV_OUT:
            # an offset-predicting conv: it must run in fp32 with autocast off
            on = torch.is_autocast_enabled(args[0].device.type)
            self.calls.append(("offset conv2d", torch.bfloat16 if on else args[0].dtype))
        if name in FP32_FUNCS:
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, torch.Tensor) and a.is_floating_point():
                    self.calls.append((name, a.dtype))
        return func(*args, **kwargs)

    def assert_fp32(self, *required: str) -> None:
        assert not [c for c in self.calls if c[1] != torch.float32], self.calls
        seen = {n for n, _ in self.calls}
        assert set(required) <= seen, (required, seen)


def variants():
    out = [pytest.param(a, "none", id=f"align-{a}") for a in sorted(ALIGN_MODULES)]
    out += [
        pytest.param("bilinear", c, id=f"context-{c}")
        for c in sorted(CONTEXT_MODULES)
        if c != "none"
    ]
    return out


# the tiny backbone's 16 channels at stride 32 leave DRANet's 1/4 x 1/16 reductions no centre
TINY_CONTEXT_OPTIONS = {"ccam_dran": "{compact: 4}"}


def amp_cfg(root, align: str, context: str) -> dict:
    return load_config(
        None,
        tiny_overrides(root)
        + [
            f"model.align={align}",
            f"model.context={context}",
            "train.amp=always",
            f"model.context_options={TINY_CONTEXT_OPTIONS.get(context, '{}')}",
            "train.batch_size=2",
            "train.loss.contrastive.warmup=0",
        ],
    )


def test_amp_setting_picks_the_devices():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not amp_enabled(True, cpu) and amp_enabled(True, cuda)
    assert amp_enabled("always", cpu) and amp_enabled("always", cuda)
    assert not amp_enabled(False, cuda)
    with autocast("always", cpu):
        assert (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )
    with autocast(True, cpu):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="train.amp"):
        amp_enabled(1, cpu)


@pytest.mark.parametrize("align,context", variants())
def test_train_step_and_inference_under_bf16(align, context, tmp_path):
    root = tmp_path / "unused"  # the batch is made here; no dataset is read
    cfg = amp_cfg(root, align, context)
    ctx = DistContext()
    torch.manual_seed(0)
    run = _build_run(cfg, ctx, build_criterion(cfg["train"]["loss"], cfg["model"]["num_classes"]))
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(2, 3, 32, 32, generator=g),
        "label": torch.randint(0, 10, (2, 32, 32), generator=g),
    }
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    rec = DtypeRecorder()
    with rec:
        terms = _train_step(run, cfg, ctx, batch, 0, None, tmp_path)
    assert {"loss", "ce", "aux", "contrast"} <= set(terms), terms  # every term ran
    assert all(math.isfinite(v) for v in terms.values()), terms
    offset_funcs = ["grid_sample", "offset conv2d"] if align != "bilinear" else []
    rec.assert_fp32("log_softmax", *offset_funcs)
    for step in run.model.offsets().values():
        assert all(t.dtype == torch.float32 for t in step.values())
    state = run.model.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in state.items())  # weights stay fp32
    assert any(not torch.equal(v, before[k]) for k, v in state.items())  # and the step moved them

    run.model.eval()
    rec = DtypeRecorder()
    with rec, torch.autocast("cpu", dtype=torch.bfloat16):
        probs = predict_probs(
            run.model,
            batch["image"],
            (32, 32),
            10,
            mode="slide",
            crop_size=(32, 24),
            stride=(16, 16),
        )
    assert probs.dtype == torch.float32 and torch.isfinite(probs).all()
    assert torch.allclose(probs.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    rec.assert_fp32("softmax", *offset_funcs)


def test_checkpoint_trained_under_bf16_reloads_and_evaluates(syn_root, tmp_path):  # noqa: F811
    from srcr.evaluate import evaluate
    from srcr.train import train

    cfg = load_config(
        None,
        tiny_overrides(syn_root)
        + [
            "model.align=srm",
            "model.context=crm",
            "train.amp=always",
            "train.iterations=2",
            "train.schedule.warmup_iters=1",
            "train.loss.contrastive.warmup=0",
        ],
    )
    train(cfg, tmp_path / "run", progress=False)
    final = torch.load(
        tmp_path / "run" / "checkpoints" / "final.pth", map_location="cpu", weights_only=True
    )
    assert all(v.dtype in (torch.float32, torch.int64) for v in final["model"].values())
    plain = evaluate(cfg, tmp_path / "run", tmp_path / "eval", device="cpu", progress=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = evaluate(
            cfg, tmp_path / "run", tmp_path / "eval_bf16", device="cpu", progress=False
        )
    for rec in (plain, mixed):
        assert rec["dataset"]["num_images"] == 4 and 0 <= rec["metrics"]["mIoU"] <= 100
        assert rec["metrics"]["aAcc"] > 0
