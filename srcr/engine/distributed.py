"""Process-group set-up for torchrun (multi-GPU / multi-node) and SyncBN that also works on CPU.

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; we initialise from that
environment with NCCL on CUDA and gloo on CPU. torch's own SyncBatchNorm refuses CPU tensors, so
on CPU (gloo) BatchNorm layers become :class:`CPUSyncBatchNorm`, which reduces the batch statistics
with a differentiable all-reduce (its backward all-reduces the gradients of the statistics, as
torch's CUDA kernel does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from ..errors import UserError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    grouped: bool = False  # in a process group even at world size 1 (init_distributed(group=True))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.grouped


def pick_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if device == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device {device!r}: expected auto, cpu or cuda")


def init_distributed(device: str = "auto", group: bool = False) -> DistContext:
    """Single process unless torchrun's WORLD_SIZE > 1; then join the process group from the env.
    ``group``: under torchrun, join it (DDP, SyncBN, collectives) even with one process, as
    ``srcr bench gpu`` checks the multi-GPU path on one GPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 and not (group and "RANK" in os.environ):
        return DistContext(device=pick_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = pick_device(device, local_rank)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo",
            init_method="env://",
            rank=rank,
            world_size=world_size,
        )
    return DistContext(rank, world_size, local_rank, dev, grouped=True)


def init_process(rank: int, world_size: int, init_method: str, device: str = "cpu") -> DistContext:
    """Join a process group explicitly (e.g. torch.multiprocessing.spawn with init_method='file://...')."""
    dev = pick_device(device, rank)
    dist.init_process_group(
        "nccl" if dev.type == "cuda" else "gloo",
        init_method=init_method,
        rank=rank,
        world_size=world_size,
    )
    return DistContext(rank, world_size, rank, dev, grouped=True)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def any_flag(ctx: DistContext, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def broadcast_object(ctx: DistContext, obj):
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the global batch of all ranks (any device, any
    backend). Two differentiable all-reduces: the mean, then the centred second moment (stabler
    than E[x^2] - E[x]^2). Outside a process group it is plain BatchNorm."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sync = (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        )
        if not sync:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        # the element count rides along with the sums: one collective for both
        count = torch.full((1,), float(xf.numel() // xf.shape[1]), device=x.device)
        stats = all_reduce(torch.cat([xf.sum(dims), count]))
        total = float(stats[-1].item())
        mean = stats[:-1] / total
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = xf - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                unbiased = var * (total / max(total - 1.0, 1.0))
                self.running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.detach() * momentum)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm*d -> torch's SyncBatchNorm on CUDA, CPUSyncBatchNorm elsewhere (same parameters)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, CPUSyncBatchNorm
    ):
        out = CPUSyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out


__all__ = [
    "DistContext",
    "init_distributed",
    "init_process",
    "barrier",
    "any_flag",
    "broadcast_object",
    "cleanup",
    "CPUSyncBatchNorm",
    "convert_sync_batchnorm",
    "pick_device",
]
