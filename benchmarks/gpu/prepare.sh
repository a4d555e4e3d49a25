#!/usr/bin/env bash
# Gathers what the GPU benchmark machine lacks into .gpu-kit/ (ignored by git), then checks that
# the working tree that travels to it stays under 64 MiB. Run here, from a checkout with .venv:
#   benchmarks/gpu/prepare.sh
# then, with the device tool: run(command="benchmarks/gpu/run.sh $OUT", carry=[".gpu-kit"]).
#   .gpu-kit/wheels/  cp312 manylinux wheels of benchmarks/gpu/requirements-gpu.txt, pinned to
#                     the versions installed in .venv (KIT_PYTHON_VERSION overrides 3.12)
#   .gpu-kit/data/    the real scans the kit measures (errsm11, sctms) from ../shared/data
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-.venv/bin/python}
PYVER=${KIT_PYTHON_VERSION:-3.12}
LIMIT_MIB=${KIT_LIMIT_MIB:-64}
KIT=.gpu-kit
DATA=${COHORT_SCISEG_TEST_DATA:-$ROOT/../shared/data}/spine-t2w
PLATFORMS=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    PLATFORMS+=(--platform "${p}_x86_64")
done

rm -rf "$KIT"
mkdir -p "$KIT/wheels" "$KIT/data"
grep -v '^\s*#' benchmarks/gpu/requirements-gpu.txt | awk 'NF {print $1}' | while read -r name; do
    version=$("$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name")
    if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
            "${PLATFORMS[@]}" -d "$KIT/wheels" "$name==$version" 2>/dev/null; then
        # published as an sdist only (pure Python, e.g. acvl_utils): build the wheel here
        "$PY" -m pip wheel -q --no-deps -w "$KIT/wheels" "$name==$version"
    fi
    echo "  $name==$version"
done
# only pure-Python wheels may be built here: a compiled one would be for this machine's Python
for whl in "$KIT"/wheels/*.whl; do
    case "$whl" in *-none-any.whl|*-cp${PYVER/./}-*|*-abi3-*) ;; *) echo "not for Python $PYVER: $whl" >&2; exit 1 ;; esac
done
for sub in sub-errsm11 sub-sctms; do
    if [ -f "$DATA/$sub/anat/${sub}_T2w.nii.gz" ]; then
        cp "$DATA/$sub/anat/${sub}_T2w.nii.gz" "$KIT/data/"
    else
        echo "warning: $DATA/$sub not found: the kit will measure synthetic scans only" >&2
    fi
done
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | awk 'END {print $1}')
kit=$(du -sb "$KIT" | cut -f1)
total=$((tree + kit))
awk -v t="$tree" -v k="$kit" -v l="$LIMIT_MIB" \
    'BEGIN {printf "working tree %.1f MiB + .gpu-kit %.1f MiB = %.1f MiB (limit %d MiB)\n", t/1048576, k/1048576, (t+k)/1048576, l}'
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "too large for the GPU machine: leave out a package the inference path does not import" >&2
    exit 1
fi
