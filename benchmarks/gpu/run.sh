#!/usr/bin/env bash
# The prepared GPU check: the `gpu`-marked tests, then benchmarks/gpu_scale.py. One command on a
# lent GPU machine (its own python3 with CUDA torch; no Ray, no pydantic, no network):
#
#     bash benchmarks/gpu/run.sh [gpu_scale options]
#
# Expected to take a few minutes on an H200 (not yet run on one); the tests are cut at 180 s
# and the benchmark at 330 s, so a device call with timeout_s=540 always returns, leaving room
# to rerun within a 15-minute lease.
#
# Results: benchmarks/results/gpu_scale.json (RESULT=path for another) and the logs
# gpu_env.txt, gpu_tests.log, gpu_scale.log in /tmp/gpu_check (LOGS=dir), all copied into $OUT
# when it is set (the device tool brings $OUT back). Without a CUDA device the tests skip, the
# benchmark writes a JSON saying "no CUDA device", and the script exits 0.
#
# Two levels, chosen by what imports there:
#   - bare machine: the gpu tests that need only torch and numpy (tests/workers/test_devices.py,
#     tests/workers/test_devices_gpu_scale.py) and the benchmark (torch, numpy, search_spaces,
#     workers.devices; the preset's phases from benchmarks/gpu/preset_cifar50k.json);
#   - with the carried wheels (pydantic and its needs): also the gpu tests of the evaluator, the
#     export and the trainer (tests/workers/test_evaluation.py, test_export.py,
#     test_training_devices.py), which import the service's catalog (pydantic).
#
# The wheels (about 3 MiB; the versions of the project's environment, for the machine's Python
# 3.12 on x86-64), downloaded here, in the repo root, with the device README's recipe:
#
#     echo /.whl/ >> "$(git rev-parse --git-common-dir)/info/exclude"
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#         --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#         --platform manylinux1_x86_64 -d .whl \
#         pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
#         typing-inspection==0.4.5 typing_extensions==4.16.0
#
# (pydantic pins pydantic_core exactly: take the pair `pip show pydantic pydantic_core` gives in
# the project's environment.) Then run with `carry: [".whl"]`. This script installs whatever
# .whl/*.whl holds (WHEELS=dir to use another folder) into /tmp/site and puts it on PYTHONPATH;
# with no wheels it runs the bare level. PYTHON=... picks the interpreter (default python3).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-.whl}"
LOGS="${LOGS:-/tmp/gpu_check}"
RESULT="${RESULT:-benchmarks/results/gpu_scale.json}"
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

copy_out() {
    if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
        cp "$LOGS"/*.log "$LOGS"/*.txt "$OUT"/ 2>/dev/null
        [ -f "$RESULT" ] && cp "$RESULT" "$OUT"/
    fi
    return 0
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "python: $("$PY" --version 2>&1) at $(command -v "$PY")"
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
} 2>&1 | tee "$LOGS/gpu_env.txt"

# ----- the carried wheels, if any ----------------------------------------------------------------
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
shopt -u nullglob
if [ ${#wheels[@]} -gt 0 ]; then
    echo "installing ${#wheels[@]} carried wheel(s) from $WHEELS into /tmp/site" |
        tee -a "$LOGS/gpu_env.txt"
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "${wheels[@]}" 2>&1 | tee -a "$LOGS/gpu_env.txt"; then
        export PYTHONPATH="$PYTHONPATH:/tmp/site"
    else
        echo "wheel install failed: running the bare level" | tee -a "$LOGS/gpu_env.txt"
    fi
fi

# ----- the gpu-marked tests ----------------------------------------------------------------------
tests=(tests/workers/test_devices.py tests/workers/test_devices_gpu_scale.py)
if "$PY" -c "import pydantic, nas_service.catalog" 2>/dev/null; then
    level="with the service's packages"
    tests+=(tests/workers/test_evaluation.py tests/workers/test_export.py
        tests/workers/test_training_devices.py)
else
    level="bare (torch and numpy only)"
fi
echo "gpu tests, $level: ${tests[*]}" | tee "$LOGS/gpu_tests.log"
# $OUT is left out of the tests' environment: only this script's files go there.
env -u OUT timeout 180 "$PY" -m pytest -q -m gpu -p no:cacheprovider "${tests[@]}" 2>&1 |
    tee -a "$LOGS/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}
[ "$tests_rc" -eq 5 ] && tests_rc=0 # nothing collected is no failure
echo "gpu tests exit status: $tests_rc" | tee -a "$LOGS/gpu_tests.log"
copy_out

# ----- the benchmark -----------------------------------------------------------------------------
timeout 330 "$PY" -m benchmarks.gpu_scale --out "$RESULT" "$@" 2>&1 | tee "$LOGS/gpu_scale.log"
bench_rc=${PIPESTATUS[0]}
echo "gpu_scale exit status: $bench_rc" | tee -a "$LOGS/gpu_scale.log"
copy_out

if [ "$tests_rc" -ne 0 ] || [ "$bench_rc" -ne 0 ]; then
    echo "FAILED: gpu tests $tests_rc, gpu_scale $bench_rc (logs in $LOGS)"
    exit 1
fi
echo "ok: gpu tests and gpu_scale (results in $RESULT)"
