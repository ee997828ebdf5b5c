#!/usr/bin/env bash
# Run the benchmark scripts and write their printed figures, with the device they ran on
# (`lazyrich info --json`) and each script's wall time, to one JSON file, so CPU and accelerator
# runs compare directly. Scripts size themselves from JAX's backend (`--scale cpu|gpu`).
#   benchmarks/run_all.sh [OUTPUT.json [SCRIPT.py ...]]      (make bench calls this)
# OUTPUT defaults to benchmarks/results/<backend>-<device kind>.json; SCRIPTs to every
# benchmarks/*.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
if [ $# -ge 1 ]; then out=$1; shift; else
    out=benchmarks/results/$("$PYTHON" -c 'import jax, re; d = jax.devices()[0]
kind = getattr(d, "device_kind", str(d))
print(re.sub("[^a-z0-9]+", "-", (jax.default_backend() + "-" + kind).lower()).strip("-"))').json
fi
if [ $# -ge 1 ]; then scripts=("$@"); else scripts=(benchmarks/*.py); fi
mkdir -p "$(dirname "$out")"
logs=$(mktemp -d)
status=0
for script in "${scripts[@]}"; do
    name=$(basename "$script" .py)
    echo "== $script"
    started=$(date +%s)
    if "$PYTHON" "$script" 2>&1 | tee "$logs/$name.txt"; then :; else status=1; echo "FAILED: $script" | tee -a "$logs/$name.txt"; fi
    echo "$(( $(date +%s) - started ))" > "$logs/$name.seconds"
done
"$PYTHON" - "$logs" "$out" <<'PY'
import datetime, json, os, platform, sys
from lazyrich.core.devices import describe
logs, out = sys.argv[1], sys.argv[2]
names = sorted(n[:-4] for n in os.listdir(logs) if n.endswith(".txt"))
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "machine": platform.machine(),
    "setup": describe(),
    "seconds": {n: int(open(os.path.join(logs, n + ".seconds")).read()) for n in names},
    "benchmarks": {n: [line for line in open(os.path.join(logs, n + ".txt")).read().splitlines()
                       if "\r" not in line] for n in names},
}
with open(out, "w") as handle:
    json.dump(report, handle, indent=1)
print(f"wrote {out}")
PY
exit $status
