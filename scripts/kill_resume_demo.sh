#!/usr/bin/env bash
# kill -9 a run after its 2nd MPC episode was written, resume it, and compare the returns of
# the remaining episodes with an uninterrupted run of the same seed (issue 17, item 2).
#   bash scripts/kill_resume_demo.sh [WORKDIR]
# Light settings (50-step episodes, CEM 100 x 3) keep it to a few minutes on 2 cores; the
# flags are the same for all three commands, so the runs must agree exactly.
set -euo pipefail
W=${1:-$(mktemp -d)}
mkdir -p "$W"
FLAGS=(--env Pendulum-v1 --episodes 4 --seed 3 --max-episode-steps 50
       --planner-opt population=100 --planner-opt iterations=3 --quiet)
returns() { python -c "import json,sys; print([round(json.loads(l)['return'], 4) for l in open(sys.argv[1]) if l.strip()])" "$1/metrics.jsonl"; }
echo "\$ mbrl run ${FLAGS[*]} --out $W/killed &   # killed with SIGKILL once metrics.jsonl has 3 episodes (seed + 2 MPC)"
mbrl run "${FLAGS[@]}" --out "$W/killed" & PID=$!
until [ -f "$W/killed/metrics.jsonl" ] && [ "$(wc -l < "$W/killed/metrics.jsonl")" -ge 3 ]; do sleep 0.2; done
kill -9 $PID; wait $PID || echo "exit status $? (killed)"
echo "episodes on disk after the kill: $(wc -l < "$W/killed/metrics.jsonl"); files: $(ls "$W/killed" | tr '\n' ' ')"
echo "\$ mbrl run --resume $W/killed"
mbrl run --resume "$W/killed" --quiet
echo "\$ mbrl run ${FLAGS[*]} --out $W/whole"
mbrl run "${FLAGS[@]}" --out "$W/whole"
echo "returns, resumed run:       $(returns "$W/killed")"
echo "returns, uninterrupted run: $(returns "$W/whole")"
python - "$W" <<'PY'
import json, sys
w = sys.argv[1]
def rets(d): return [json.loads(l)["return"] for l in open(f"{w}/{d}/metrics.jsonl") if l.strip()]
a, b = rets("killed"), rets("whole")
print("identical" if a == b else "DIFFERENT", f"({len(a)} vs {len(b)} episodes)")
sys.exit(0 if a == b else 1)
PY
