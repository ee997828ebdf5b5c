#!/usr/bin/env bash
# What one short GPU lease measures (~7 minutes on an H200): the DMFT's triangular solves ours vs
# the library's, the DMFT iteration's phases at the rich corner's size, the DMFT against the
# 8-seed simulation at D = 100 .. 400, then the sweep engine's throughput with what time is left.
# Each step runs under its own time limit and writes its log to OUT (default benchmarks/results/
# lease-logs), so a cut step still leaves the lines it printed.
#   PYTHON=python3 benchmarks/gpu_lease.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
out=${1:-benchmarks/results/lease-logs}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

step() {   # step NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit} s): $*"
    local started=$SECONDS
    timeout "$limit" "$@" > >(tee "$out/$name.txt") 2>"$out/$name.err"
    local status=$?
    echo "== $name: exit $status after $((SECONDS - started)) s" | tee -a "$out/$name.txt"
    [ "$status" = 0 ] || tail -5 "$out/$name.err"
}

step setup 60 "$PYTHON" -c 'import json, lazyrich, dmft.grokking
from lazyrich.core.devices import describe; print(json.dumps(describe()))'
step triangular 170 "$PYTHON" benchmarks/triangular_solves.py --max-iter 3
step dmft_cost 170 "$PYTHON" benchmarks/dmft_cost.py --points 801 --samples 4000 --response 64 \
    --rank 16 --dims 100 200 400 --grid adaptive \
    --solve n_samples=400 n_response=16 bulk_rank=16 anderson=0 tol=1e-3 dtype=float32
step sweep_throughput 90 "$PYTHON" benchmarks/sweep_throughput.py --scale gpu --sizes demo \
    --demo-steps 500
