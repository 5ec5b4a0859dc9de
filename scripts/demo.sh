#!/usr/bin/env bash
# End-to-end demo on the embedded default (a local filesystem registry), on synthetic data:
# demo-data -> train (short settings) -> push -> pull into a fresh directory -> verify -> predict.
# Everything lives in one throwaway directory (MODELREG_HOME too), printed at the start.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
modelreg="$here/.venv/bin/modelreg"
demo="${DEMO_DIR:-$(mktemp -d -t modelreg-demo-XXXXXX)}"
export MODELREG_HOME="$demo/home" TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
mkdir -p "$demo/workspace" && cd "$demo/workspace"
echo "== demo directory: $demo"

echo "== 1. synthetic features shaped like the seed's (96 utterances, 13 emotions, 768 features)"
"$modelreg" demo-data "$demo/data"

echo "== 2. train v9 (short settings)"
"$modelreg" train v9 --data "$demo/data" --epochs "${DEMO_EPOCHS:-8}" --patience 4

echo "== 3. push to the local registry ($MODELREG_HOME/registry)"
"$modelreg" push v9
"$modelreg" tag v9 production

echo "== 4. pull on a 'fresh machine' (empty cache) into a new directory"
export MODELREG_CACHE="$demo/fresh-cache"
"$modelreg" pull production --dest "$demo/pulled"
(cd "$demo/pulled" && sha256sum -c SHA256SUMS)
"$modelreg" verify "$demo/pulled"

echo "== 5. predict through the verified loader"
utterances=("$demo/data"/*.npz)
"$modelreg" predict v9 "${utterances[0]}" "${utterances[1]}"
"$modelreg" show v9 --json > "$demo/show.json"
"$here/.venv/bin/python" - "$demo/show.json" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))["manifest"]["metrics"]
print(f"validation accuracy {metrics['val_accuracy']:.3f} (train {metrics['train_accuracy']:.3f}) "
      f"on synthetic data")
PY
echo "== done: $demo"
