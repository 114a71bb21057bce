#!/usr/bin/env bash
# The main job on the bundled demo stack: validate the plans, bring the stack up,
# show the day-1 diff, then apply day 1 with a short soak (the plan says 4h).
# The stack runs from a copy outside the checkout (`rollout demo status` prints where;
# `rollout demo down --purge` starts over), so the checkout stays clean.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
SOAK=${SOAK:-20s}

rollout validate
rollout demo up
rollout diff day1
rollout apply day1 --yes --soak "$SOAK"
rollout status
