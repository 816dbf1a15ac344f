#!/usr/bin/env bash
# Kill `winner ner train` with SIGKILL five times, each at a random moment after its first epoch line, resume
# after each kill, then resume to the end; compare with an uninterrupted run of the same command: metrics.jsonl
# must hold each epoch once and the parameters must be identical.
# Usage: bash scripts/kill_resume_drill.sh WORK_DIR [extra `winner ner train` options...]
#   e.g. bash scripts/kill_resume_drill.sh /tmp/drill --train ../shared/data/conll2003/train.txt \
#            --dev ../shared/data/conll2003/valid.txt --embeddings none --hidden 64 --epochs 6
set -uo pipefail
WORK=${1:?usage: kill_resume_drill.sh WORK_DIR [train options...]}
shift
mkdir -p "$WORK" && cd "$WORK" || exit 1
rm -rf straight killed ./*.log
ARGS=(ner train --seed 0 --patience 100 -q "$@")
winner "${ARGS[@]}" --out straight > straight.log 2>&1 || { echo "uninterrupted run failed"; cat straight.log; exit 1; }
RANDOM=11
for i in 1 2 3 4 5; do
  if [ -d killed/checkpoint ]; then R=(--resume); elif [ -d killed ]; then R=(--overwrite); else R=(); fi
  winner "${ARGS[@]}" --out killed "${R[@]}" > "run$i.log" 2>&1 &
  pid=$!
  while ! grep -q "^epoch " "run$i.log" && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  ms=$((300 + RANDOM % 4000))
  sleep "$(python -c "print($ms / 1000)")"
  if kill -9 "$pid" 2>/dev/null; then echo "kill $i: ${ms} ms after its first epoch line (${R[*]:-new run})"
  else echo "run $i ended before its kill"; fi
  wait "$pid" 2>/dev/null
  python -c "import json; print('  checkpoint after epoch', json.load(open('killed/checkpoint/state.json'))['loop']['epoch'])" \
    2>/dev/null || echo "  no checkpoint"
done
if [ -d killed/checkpoint ]; then R=(--resume); else R=(--overwrite); fi
winner "${ARGS[@]}" --out killed "${R[@]}" > final.log 2>&1
echo "final run exit code $? (${R[*]})"
python - <<'PY'
import json
import numpy as np
for run in ("straight", "killed"):
    rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
    print(run, "epochs", [r["epoch"] for r in rows], "dev F1", [round(r["dev F1"], 6) for r in rows])
with np.load("straight/model/params.npz") as a, np.load("killed/model/params.npz") as b:
    print("identical parameters:", a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files))
PY
