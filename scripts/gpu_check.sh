#!/usr/bin/env bash
# Prove and time the CUDA path in under 5 minutes (mbrl.bench.gpu):
#   rollout engine vs a bare forward pass (PETS shape), CUDA graphs vs eager (and equal
#   returns on a deterministic model), CEM ms per action at the PETS shape (population 350,
#   H 15, 20 particles, 5 iterations, ensemble 5x4x200) eager / graph / under a plan budget,
#   and a short `mbrl run --device cuda`.
#
# Usage:
#   scripts/gpu_check.sh [--json FILE] [--device cuda:N] [--repeats N] [--skip-run]
#   scripts/gpu_check.sh --dry [--json FILE]     # CPU, tiny shapes, seconds (CI)
#
# Exit status: 0 all checks passed, 1 a check failed, 2 no CUDA device (without --dry),
# 124 the 5-minute limit was hit (the JSON file holds the sections finished so far).
# PYTHON selects the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout "${GPU_CHECK_TIMEOUT_S:-300}" "${PYTHON:-python}" -m mbrl.bench.gpu "$@"
