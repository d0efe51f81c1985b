"""What a benchmark records about the machine and the process (no heavy imports: the GPU suite
uses it on hosts that may have nothing but PyTorch)."""

from __future__ import annotations

import os
import platform
import sys

from tgv_deploy import __version__


def machine_description() -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "python": sys.version.split()[0], "tgv_deploy": __version__,
    }
    try:
        with open("/proc/cpuinfo") as handle:
            names = [l.split(":", 1)[1].strip() for l in handle if l.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    for module in ("onnxruntime", "torch"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            pass
    return info


def resident_mb() -> float:
    """Current resident memory of this process in MiB (Linux ``/proc``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
