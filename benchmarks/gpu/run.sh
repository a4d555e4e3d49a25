#!/usr/bin/env bash
# The GPU kit in one call: benchmarks/gpu/run.sh OUTDIR [--cpu] [--small] [--budget S]
# On the GPU machine (no package registry): installs the wheels that prepare.sh gathered in
# .gpu-kit/wheels, then runs kit.py, which writes OUTDIR/kit.json, OUTDIR/env.txt and
# OUTDIR/kit.log. Elsewhere (the CPU dry run of the tests) it uses the current environment.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu/run.sh OUTDIR [--cpu] [--small] [--budget SECONDS]}
shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
if [ -d .gpu-kit/wheels ] && ! "$PY" -c "import nnunetv2, distributed, nibabel" 2>/dev/null; then
    SITE=${KIT_SITE:-/tmp/kit-site}
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        .gpu-kit/wheels/*.whl || exit 2
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import SimpleITK" 2>/dev/null; then
    export PYTHONPATH="$ROOT/benchmarks/gpu/shims${PYTHONPATH:+:$PYTHONPATH}"
fi
# the package from this working tree (not installed there); nnU-Net warns when its folders are unset
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export nnUNet_raw=${nnUNet_raw:-/tmp/kit-nnunet} nnUNet_preprocessed=${nnUNet_preprocessed:-/tmp/kit-nnunet} \
    nnUNet_results=${nnUNet_results:-/tmp/kit-nnunet}
"$PY" benchmarks/gpu/kit.py "$OUT" "$@" 2>&1 | tee "$OUT/kit.log"
exit "${PIPESTATUS[0]}"
