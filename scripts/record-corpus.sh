#!/usr/bin/env bash
# Records a data dir with the closeout binary given (default: the debug build
# of this checkout) into tests/corpus/NAME, for tests/corpus_resume.rs: every
# later version must resume it. Run it BEFORE a change that touches the event
# log, the events or the saga's state, with the binary from before the change.
#
#   scripts/record-corpus.sh NAME [MODE]
#
# MODE:
#   step1   (default) SIGKILL while step 1 deletes users under a tight write
#           budget: intents in doubt, partner and direct tenants.
#   done    a closure run to completion (auto-operator), then SIGTERM.
#
# The tenants come from `closeout sim --generate` with a fixed seed, so the
# resume test can start the same tenants again; secrets are systemd
# credentials (named t0, t1, ..., partner), never paths, so that the recorded
# sagas find them through $CREDENTIALS_DIRECTORY wherever the test runs.
# VERBOSE=1 prints each status read; KEEP_TMP=1 keeps the work dir.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/record-corpus.sh NAME [step1|done]}
mode=${2:-step1}
bin=${CLOSEOUT_BIN:-target/debug/closeout}
out=tests/corpus/$name
[ -e "$out" ] && { echo "record-corpus: $out exists" >&2; exit 2; }

generate="tenants=2,users=60,direct=0.5"
seed=7
case "$mode" in
  step1) sim_args=(--generate "$generate" --seed "$seed" --write-limit 10/1s) ;;
  done) sim_args=(--generate "$generate" --seed "$seed" --auto-operator 200ms --deprovision-after 1s) ;;
  *) echo "record-corpus: unknown mode $mode" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
umask 077
cleanup() { kill -9 "${daemon:-}" "${sim:-}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
[ -n "${KEEP_TMP:-}" ] && trap "kill -9 \${daemon:-} \${sim:-} 2>/dev/null; echo kept \$tmp" EXIT

"$bin" sim --listen 127.0.0.1:0 "${sim_args[@]}" >"$tmp/sim.out" 2>/dev/null &
sim=$!
for _ in $(seq 100); do grep -q listening "$tmp/sim.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$tmp/sim.out" | head -n1)
[ -n "$url" ] || { echo "record-corpus: the sim did not start" >&2; exit 1; }

mkdir -p "$tmp/creds"
python3 - "$url" "$tmp" <<'PY'
import json, sys, urllib.request
url, tmp = sys.argv[1], sys.argv[2]
get = lambda p: json.load(urllib.request.urlopen(url + p))
partner = get("/_sim/partner")
open(f"{tmp}/creds/partner", "w").write(partner["client_secret"])
batch = []
for i, t in enumerate(get("/_sim/tenants")):
    open(f"{tmp}/creds/t{i}", "w").write(t["client_secret"])
    mode = "partner-center" if t["billing"] == "partner" else "manual"
    batch.append(
        f'[[tenant]]\ntenant_id = "{t["tenant_id"]}"\nclient_id = "{t["client_id"]}"\n'
        f'client_secret_credential = "t{i}"\nkeep = {json.dumps(t["keep"])}\n'
        f'subscriptions = "{mode}"\n')
open(f"{tmp}/batch.toml", "w").write("\n".join(batch))
open(f"{tmp}/partner.toml", "w").write(
    f'tenant_id = "{partner["tenant_id"]}"\nclient_id = "{partner["client_id"]}"\n')
PY

cat >"$tmp/closeout.toml" <<TOML
data_dir = "$tmp/data"
control_socket = "$tmp/control.sock"
[endpoints]
graph = "$url"
login = "$url"
partner_center = "$url"
[partner_center]
$(cat "$tmp/partner.toml")
client_secret_credential = "partner"
[retry]
initial_interval = "50ms"
max_interval = "500ms"
[saga]
# Nobody attests in a recording: the backup gate has its own tests.
backup = "off"
deprovision_poll = "300ms"
gate_recheck = "300ms"
tenant_gone_poll = "300ms"
TOML

CREDENTIALS_DIRECTORY="$tmp/creds" "$bin" daemon --config "$tmp/closeout.toml" 2>"$tmp/daemon.log" &
daemon=$!
for _ in $(seq 200); do [ -S "$tmp/control.sock" ] && break; sleep 0.1; done
"$bin" submit --config "$tmp/closeout.toml" "$tmp/batch.toml" >/dev/null

status() { "$bin" status --config "$tmp/closeout.toml" --json; }
for _ in $(seq 600); do
  sleep 0.2
  s=$(status) || continue
  [ -n "${VERBOSE:-}" ] && echo "$s" >&2
  if [ "$mode" = step1 ]; then
    # A saga in step 1 with some of its users deleted: kill mid-work.
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if len(r)==2 and any(x["step"]==1 and 10<=x["progress"]["done"]<x["progress"]["total"] for x in r) else 1)' "$s" && break
  else
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r and all(x["state"]=="completed" for x in r) else 1)' "$s" && break
  fi
done
if [ "$mode" = step1 ]; then kill -9 "$daemon"; else kill -TERM "$daemon"; fi
wait "$daemon" 2>/dev/null || true
echo "$s" >"$tmp/status.json"

mkdir -p "$out"
cp -r "$tmp/data" "$out/data"
cp "$tmp/batch.toml" "$out/batch.toml"
cat >"$out/meta.toml" <<TOML
# Recorded by scripts/record-corpus.sh with $("$bin" --version 2>/dev/null || echo closeout)
# at $(git rev-parse --short HEAD) on $(date -u +%Y-%m-%dT%H:%M:%SZ).
mode = "$mode"
generate = "$generate"
seed = $seed
TOML
cp "$tmp/status.json" "$out/status.json"
echo "record-corpus: $out ($(du -sh "$out/data" | cut -f1))"
