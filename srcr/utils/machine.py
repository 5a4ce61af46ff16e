"""What a result was computed on. Float results differ across machines (and thread counts) in the
last bits, which training amplifies, so every run and table records this."""

from __future__ import annotations

import os
import platform
import socket


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device=None) -> dict:
    """hostname, platform, cpu, cores, device ('cpu' / 'cuda'), gpu name, torch version, threads."""
    import torch

    dev = str(getattr(device, "type", device) or "cpu")
    gpu = None
    if dev == "cuda" and torch.cuda.is_available():
        index = getattr(device, "index", None)
        gpu = torch.cuda.get_device_name(torch.cuda.current_device() if index is None else index)
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "device": dev, "gpu": gpu, "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def describe(info: dict) -> str:
    """One line for a table footer: 'cpu: <model> x<cores>, 1 thread, torch 2.14.1'."""
    where = f"gpu: {info['gpu']}" if info.get("gpu") else f"cpu: {info.get('cpu')} x{info.get('cores')}"
    n = info.get("threads")
    return f"{where}, {n} thread{'s' if n != 1 else ''}, torch {info.get('torch')}"
