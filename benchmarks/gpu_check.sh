#!/usr/bin/env bash
# The one-GPU check (at most 8 minutes, nothing downloaded): writes benchmarks/results/gpu.json.
#   bash benchmarks/gpu_check.sh             on a machine with one CUDA GPU
#   bash benchmarks/gpu_check.sh --dry_run   anywhere: the same steps at toy sizes on the CPU
# What it measures: benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 480 python -m benchmarks.gpu_check "$@"
