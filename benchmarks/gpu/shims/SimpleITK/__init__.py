# ruff: noqa: N999
"""Stand-in for SimpleITK on the GPU benchmark machine, where the real package is not carried.

SimpleITK's wheel is 52 MB and the working tree that reaches the GPU machine is limited to
64 MiB. nnU-Net imports SimpleITK when its modules load (the reader registry, the torch
resampling module), but the kit's code paths read and write NIfTI with nibabel and never
call it. ``benchmarks/gpu/run.sh`` puts this folder on ``PYTHONPATH`` only where
``import SimpleITK`` fails; any use of SimpleITK then raises, so no measurement can
silently depend on it (the kit records ``simpleitk: shim`` in its JSON).
"""

__kit_shim__ = True


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    msg = (f"SimpleITK.{name} was used, but SimpleITK is not installed on this machine: the GPU kit carries "
           "a stand-in (benchmarks/gpu/shims). Carry the real wheel, or read images with nibabel")
    raise ImportError(msg)
