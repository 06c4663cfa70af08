#!/usr/bin/env bash
# The README's first command: installs everything into .venv (scripts/bootstrap.sh), then
# materializes the demo recipe (recipes/demo/recipe.yaml, bundled data in recipes/demo/data)
# through Dagster with the repository's default instance (.dagster_home: stock Dagster on SQLite,
# telemetry off), and says where the output is and how to open the UI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

export DAGSTER_HOME="$PWD/.dagster_home"
# the `gpu` pool (steps holding GPU OPs) gets one slot per GPU of this host, unless already set
slots=$(.venv/bin/python -c "import dagster as dg; from dj_assets.gpu import ensure_gpu_pool; print(ensure_gpu_pool(dg.DagsterInstance.get()))")
echo "Dagster instance: $DAGSTER_HOME (pool gpu: $slots slot(s))"

# every partition of the demo recipe: dj-process syncs the partitions with the input files, then
# runs demo_job over all of them in one run (cleaned -> filtered -> deduped -> language -> export),
# after any run of the recipe already in progress in this instance
.venv/bin/dj-process --config recipes/demo/recipe.yaml

out="$PWD/outputs/demo/demo.jsonl"
cat <<MSG

Demo done: $(cat recipes/demo/data/*.jsonl | wc -l | tr -d " ") input rows -> $(wc -l < "$out" | tr -d " ") rows kept.
  output:          $out
  stats:           $PWD/outputs/demo/demo_stats.jsonl
  partition files: $PWD/outputs/dagster_storage/demo/<stage>/<partition>.parquet
  bad rows:        $PWD/outputs/demo/bad_rows/

Open the UI (asset graph, partitions, per-OP metadata, checks, runs):
  DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000
  then http://127.0.0.1:3000/locations/dj_assets/asset-groups/demo/lineage
Other ways to run it (partitions: one per input file or row range, registered by the run above):
  .venv/bin/dg launch --job demo_job --partition forum.jsonl
  .venv/bin/dg launch --job demo_job --partition-range 'articles.jsonl...reviews_home.jsonl'
  .venv/bin/dagster job execute -m dj_assets.definitions -j demo_job --tags '{"dagster/partition": "forum.jsonl"}' \\
      -c run_config/info_logs.yaml
  .venv/bin/dj-process --config recipes/demo/recipe.yaml --executor local    (the engine alone, no Dagster)
  drop a .jsonl into inbox/demo/ while \`dagster dev\` runs: the inbox sensor makes it a partition and a run
MSG
