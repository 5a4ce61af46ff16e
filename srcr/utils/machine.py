"""What a result was computed on. Float results differ across machines (and thread counts) in the
last bits, which training amplifies, so every run and table records this."""

from __future__ import annotations

import os
import platform
import socket


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model(fields: dict[str, str] | None = None) -> str:
    """The CPU's name, with family/model/stepping where it is as generic as "AMD EPYC" (virtual
    machines report one name for several generations, whose results and speed differ)."""
    fields = _cpuinfo() if fields is None else fields
    name = fields.get("model name") or platform.processor() or platform.machine()
    ids = [
        f"{k} {fields[f]}"
        for k, f in (("family", "cpu family"), ("model", "model"), ("stepping", "stepping"))
        if fields.get(f)
    ]
    return f"{name} ({', '.join(ids)})" if ids else name


def cpu_isa() -> str:
    """The vector instruction set torch's CPU kernels use here (AVX2, AVX512, ...): kernels differ
    by it, so results differ in the last bits between hosts with different ones."""
    import torch

    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return "?"


def machine_info(device=None) -> dict:
    """hostname, platform, cpu, cores, device ('cpu' / 'cuda'), gpu name, torch version, threads."""
    import torch

    dev = str(getattr(device, "type", device) or "cpu")
    gpu = None
    if dev == "cuda" and torch.cuda.is_available():
        index = getattr(device, "index", None)
        gpu = torch.cuda.get_device_name(torch.cuda.current_device() if index is None else index)
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cores": os.cpu_count(),
        "device": dev,
        "gpu": gpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def chip(info: dict) -> str:
    """The GPU's name, else the CPU's with its vector ISA ('AMD EPYC (family 25, ...) AVX2')."""
    return (
        info.get("gpu") or " ".join(x for x in (info.get("cpu"), info.get("cpu_isa")) if x) or "?"
    )


def describe(info: dict) -> str:
    """One line for a table footer: 'cpu: <model> <isa> x<cores>, 1 thread, torch 2.14.1'."""
    where = f"gpu: {chip(info)}" if info.get("gpu") else f"cpu: {chip(info)} x{info.get('cores')}"
    n = info.get("threads")
    return f"{where}, {n} thread{'s' if n != 1 else ''}, torch {info.get('torch')}"
