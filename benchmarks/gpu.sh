#!/usr/bin/env bash
# The `base` preset (12 x 768, ~124M parameters) in bfloat16 on one NVIDIA GPU, on JAX and
# PyTorch: installs the CUDA builds, trains a few hundred steps with fit() on each backend,
# prints tokens/s and MFU against the chip's peak (attention FLOPs included and not), and
# writes benchmarks/results/gpu.jsonl. Issue 12, goal 7; see docs/performance.md.
#
# Usage (repository root or anywhere):
#   benchmarks/gpu.sh                          # install, then jax and torch, 300 steps each
#   benchmarks/gpu.sh --no-install --steps 100 --batch-size 8
#   benchmarks/gpu.sh --distribution data -- --max-steps 200 --precision bfloat16
#       also runs `keras-dualobj train --preset base --distribution data ...` on all the
#       machine's devices (JAX), passing the spec and anything after `--` through unchanged.
#
# Options: --steps N (300), --warmup-steps N (10), --batch-size N (16 rows of 2,048),
#          --backends "jax torch", --peak-tflops X (default: looked up from nvidia-smi),
#          --distribution SPEC, --no-install.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=300
WARMUP=10
BATCH=16
BACKENDS="jax torch"
PEAK=()
DISTRIBUTION=""
INSTALL=1
TRAIN_EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --warmup-steps) WARMUP="$2"; shift 2 ;;
    --batch-size) BATCH="$2"; shift 2 ;;
    --backends) BACKENDS="$2"; shift 2 ;;
    --peak-tflops) PEAK=(--peak-tflops "$2"); shift 2 ;;
    --distribution) DISTRIBUTION="$2"; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --) shift; TRAIN_EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu.sh: error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v nvidia-smi >/dev/null; then
  echo "gpu.sh: error: nvidia-smi not found; this script needs an NVIDIA GPU" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

if [ "$INSTALL" = 1 ]; then
  # Pinned CUDA builds of the versions the project is tested with (pyproject's jax and
  # torch extras are the CPU builds). PyPI's Linux torch wheel is the CUDA one.
  python -m pip install -e .
  python -m pip install "jax[cuda12]==0.10.2"
  python -m pip install "torch==2.13.0" --index-url https://pypi.org/simple
fi

export TF_CPP_MIN_LOG_LEVEL=2
OUTPUT=benchmarks/results/gpu.jsonl
mkdir -p benchmarks/results
: > "$OUTPUT"
for backend in $BACKENDS; do
  echo "== $backend: preset base, mixed_bfloat16, $STEPS steps of $BATCH x 2048 =="
  KERAS_BACKEND="$backend" python benchmarks/gpu_throughput.py --preset base \
    --dtype-policy mixed_bfloat16 --steps "$STEPS" --warmup-steps "$WARMUP" \
    --batch-size "$BATCH" "${PEAK[@]}" --output "$OUTPUT"
done

python - "$OUTPUT" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"\n{'backend':<8} {'device':<28} {'tokens/s':>10} {'MFU':>6} {'MFU w/o attn':>12} {'compile s':>9}")
for r in rows:
    mfu = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
    mfu_matmul = "-" if r["mfu_without_attention"] is None else f"{r['mfu_without_attention']:.1%}"
    print(f"{r['backend']:<8} {str(r['device']):<28} {r['tokens_per_second']:>10,.0f} {mfu:>6} "
          f"{mfu_matmul:>12} {r['compile_and_warmup_seconds']:>9.0f}")
EOF

if [ -n "$DISTRIBUTION" ]; then
  echo "== keras-dualobj train --preset base --distribution $DISTRIBUTION (jax) =="
  KERAS_BACKEND=jax python -m keras_dualobj train --preset base --source builtin \
    --batch-size "$BATCH" --token-budget $((STEPS * BATCH * 2048)) \
    --output-dir runs/gpu-distribution --overwrite \
    --distribution "$DISTRIBUTION" "${TRAIN_EXTRA[@]}"
fi
