#!/usr/bin/env bash
# `make demo`: the whole job end to end against the built-in emulator, on loopback, with
# made-up credentials and a throwaway state directory. Nothing leaves this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

work=.demo
rm -rf "$work" && mkdir -p "$work"
state="$work/state"

# The emulator checks signatures like the real APIs do: client and emulator share these
# made-up credentials. They are not secrets and reach no cloud.
export TENCENTCLOUD_SECRET_ID=AKIDdemo0000000000000000000000000000
export TENCENTCLOUD_SECRET_KEY=demo-secret-key-not-a-real-one
export ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIdemo00000000000000
export ALIBABA_CLOUD_ACCESS_KEY_SECRET=demo-access-key-secret-not-a-real-one
unset TENCENTCLOUD_SESSION_TOKEN ALIBABA_CLOUD_SECURITY_TOKEN BACKFILL_STATE_DIR
unset BACKFILL_ENDPOINT BACKFILL_TENCENT_ENDPOINT BACKFILL_ALIYUN_ENDPOINT

step() { printf '\n\033[1m==> %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
calls() { python -c 'import httpx,sys; print(len(httpx.get(sys.argv[1] + "/_emulator/calls").json()["calls"]))' "$url"; }

backfill emulator --port 0 --instance-seconds 0.05 --ready-file "$work/emulator.url" >"$work/emulator.log" 2>&1 &
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$work/emulator.url" ] && break; sleep 0.1; done
[ -s "$work/emulator.url" ] || { echo "the emulator did not start:"; cat "$work/emulator.log"; exit 1; }
url=$(cat "$work/emulator.url")
echo "Emulator running at $url (state: $state)"

step "Validate the example plans" backfill validate plans/
step "Start the state: the journal every apply appends to" backfill init --state-dir "$state"
step "Plan: what would a merge submit? (no credentials needed)" backfill plan --state-dir "$state"
step "Apply against the emulator" backfill apply --state-dir "$state" --endpoint "$url" --yes
echo "The emulator accepted $(calls) creates."
step "The state: one line per submission" backfill state list --state-dir "$state"
step "Plan again: nothing to do (exit code 0 with --detailed-exitcode)" \
  backfill plan --state-dir "$state" --detailed-exitcode
before=$(calls)
step "Apply again: a rerun is a no-op" backfill apply --state-dir "$state" --endpoint "$url" --yes
after=$(calls)
echo "The emulator accepted $((after - before)) new creates on the rerun (total $after)."
[ "$before" = "$after" ] || { echo "a rerun made calls: that is a bug"; exit 1; }
printf '\nJournal: %s lines in %s/journal.jsonl (hash-chained audit trail).\n' \
  "$(wc -l <"$state/journal.jsonl")" "$state"
step "Follow the backfills: refresh until every cell is final (exit 0: all succeeded)" \
  backfill status --wait --state-dir "$state" --endpoint "$url" --wait-timeout 300
step "Health next to sync: one mark per target and date" backfill status --state-dir "$state"
