#!/bin/sh
# The jobs whose outputs a redesign must keep: run them in a source tree, then compare two trees' outputs with
# scripts/compare_outputs.py. Usage:
#   sh scripts/reference_jobs.sh TREE OUTDIR        # e.g. a git worktree of the previous main, then this tree
#   python scripts/compare_outputs.py BEFORE_DIR AFTER_DIR miniaod.root miniaod_sonic.root ng.root ng_sonic.root \
#       dqm.root dqm_sonic.root
# The main job direct and SONIC (one stream: the local server's batching then has nothing to merge), NuGraph3
# direct and SONIC on 50 generated events (seed 1, made with this tree's generator), the DQM job direct and on
# MLServer, all on the bundled defaults. PYTHON (default: python) must have the framework's dependencies.
set -e
tree=$(cd "$1" && pwd); mkdir -p "$2"; out=$(cd "$2" && pwd)
PY=${PYTHON:-python}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # absolute: the jobs cd
here=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$out/events.h5" ] || PYTHONPATH=$here "$PY" -m framework generate-nugraph --events 50 --seed 1 "$out/events.h5"
cd "$tree"
export PYTHONPATH="$tree"
run() { name=$1; shift; "$PY" -m framework run "$@" outputFile="$out/$name.root" > "$out/$name.log" 2>&1; }
run miniaod configs/miniaod_cfg.py
run miniaod_sonic configs/miniaod_cfg.py sonic=1 numStreams=1
run ng configs/nugraph3_cfg.py inputFiles="$out/events.h5"
run ng_sonic configs/nugraph3_cfg.py inputFiles="$out/events.h5" sonic=1 numStreams=1
run dqm configs/dqm_cfg.py
run dqm_sonic configs/dqm_cfg.py sonic=1
echo "wrote $out"
