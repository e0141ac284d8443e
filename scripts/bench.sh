#!/usr/bin/env bash
# Runs every benchmark of the project RUNS times (default 3) in release mode
# and prints, per figure, each run's value and the median, as a Markdown table
# (the figures of BENCHMARKS.md come from this script).
#
#   scripts/bench.sh                 # all benches, 3 runs each
#   RUNS=5 scripts/bench.sh store    # only benches/store.rs, 5 runs
#   CLOSEOUT_BENCH_QUICK=1 scripts/bench.sh   # a few seconds each (smoke)
#
# Raw output of every run goes to target/bench-runs/<bench>-<n>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(store sim graph daemon audit state)
out=target/bench-runs
mkdir -p "$out"
cargo build --release --benches --bins >&2

for b in "${benches[@]}"; do
  for n in $(seq 1 "$runs"); do
    echo "scripts/bench.sh: $b run $n/$runs" >&2
    cargo bench --quiet --bench "$b" 2>"$out/$b-$n.err" | tee "$out/$b-$n.txt" >&2
  done
done

echo "| figure | unit | runs | median |"
echo "|---|---|---|---|"
for b in "${benches[@]}"; do
  cat "$out/$b"-*.txt | awk '$1 == "bench" && NF >= 3 { print $2, $3, (NF >= 4 ? $4 : "") }'
done | awk '
  { vals[$1] = vals[$1] " " $2; unit[$1] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]; m = split(substr(vals[k], 2), v, " ");
      # insertion sort, numeric
      for (a = 2; a <= m; a++) { x = v[a] + 0; j = a - 1; while (j >= 1 && v[j] + 0 > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
      med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
      printf "| `%s` | %s | %s | %s |\n", k, unit[k], substr(vals[k], 2), med
    }
  }'
