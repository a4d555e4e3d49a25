"""This machine's NVIDIA GPUs, read from ``nvidia-smi -L`` (no torch import, no CUDA initialisation)."""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["gpu_names"]


def gpu_names() -> list[str]:
    """The ``GPU <i>: <name> (UUID: ...)`` lines of ``nvidia-smi -L``; none without the tool.

    ``CUDA_VISIBLE_DEVICES`` is not applied here (``nvidia-smi`` ignores it):
    these are the GPUs of the machine. A tool that fails or hangs (20 s) counts
    as no GPU.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "-L"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.startswith("GPU ")]
