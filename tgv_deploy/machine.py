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


#: Git pathspecs of what a result can depend on: the whole checkout except result files and Markdown.
#: Benchmarks write into ``benchmarks/results/`` and tables into the docs, so a run that follows
#: another, or docs edited meanwhile, would otherwise mark a result of committed code "+dirty".
RESULT_INDEPENDENT_PATHS = (":(top)", ":(top,exclude)benchmarks/results", ":(top,exclude,glob)**/*.md")


def provenance(models: dict[str, str] | None = None) -> dict[str, object]:
    """What a result file records to be reproducible: the command, the git commit (``+dirty`` when
    tracked files other than results and Markdown have uncommitted changes, :data:`RESULT_INDEPENDENT_PATHS`),
    package versions, the machine, and each model's weights hash."""
    import hashlib
    import subprocess

    def git(*args: str) -> str:
        try:
            # the package's own checkout, wherever the command runs ("unknown" for an installed wheel)
            here = os.path.dirname(os.path.abspath(__file__))
            return subprocess.run(["git", "-C", here, *args], capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no", "--", *RESULT_INDEPENDENT_PATHS):
        commit += "+dirty"
    hashes = {}
    for name, path in (models or {}).items():
        with open(path, "rb") as handle:
            hashes[name] = hashlib.sha256(handle.read()).hexdigest()
    return {
        "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
        "commit": commit or "unknown",
        "machine": machine_description(),
        "model_sha256": hashes,
    }
