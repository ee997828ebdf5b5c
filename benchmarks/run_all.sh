#!/usr/bin/env bash
# Run every benchmark script and write their printed figures, with the device they ran on, to
# one JSON file (default benchmarks/results.json), so CPU and accelerator runs compare directly.
#   benchmarks/run_all.sh [OUTPUT.json]        (make bench calls this)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
out=${1:-benchmarks/results.json}
logs=$(mktemp -d)
status=0
for script in benchmarks/*.py; do
    name=$(basename "$script" .py)
    echo "== $script"
    if "$PYTHON" "$script" | tee "$logs/$name.txt"; then :; else status=1; echo "FAILED: $script"; fi
done
"$PYTHON" - "$logs" "$out" <<'PY'
import datetime, json, os, platform, sys
import jax
logs, out = sys.argv[1], sys.argv[2]
device = jax.devices()[0]
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "backend": jax.default_backend(),
    "device": getattr(device, "device_kind", str(device)),
    "device_count": jax.device_count(),
    "cpu_count": os.cpu_count(),
    "machine": platform.machine(),
    "jax": jax.__version__,
    "benchmarks": {name[:-4]: open(os.path.join(logs, name)).read().splitlines()
                   for name in sorted(os.listdir(logs))},
}
with open(out, "w") as handle:
    json.dump(report, handle, indent=1)
print(f"wrote {out}")
PY
exit $status
