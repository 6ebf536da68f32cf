#!/bin/sh
# Waits for the Temporal frontend, creates the namespace when missing, waits until
# it is served, and registers the search attributes Steadfast's workflows upsert
# (SEARCH_ATTRIBUTES in src/shared/search-attributes.ts; a unit test keeps the list equal). Exits non-zero, with the reason, when any
# step fails or times out: a batch must never start on a half set-up server.
# Runs in the temporalio/admin-tools image (docker-compose.yml) and in
# scripts/cluster.sh. The `temporal` CLI reads TEMPORAL_ADDRESS and the
# TEMPORAL_TLS_* / TEMPORAL_API_KEY variables itself.
#
#   TEMPORAL_ADDRESS         [temporal:7233]
#   TEMPORAL_NAMESPACE       [default]
#   STEADFAST_SETUP_TIMEOUT  seconds per wait [120]
#   TEMPORAL                 the CLI [temporal]
#   STEADFAST_SEARCH_ATTRIBUTES  Name=Type pairs [the list below]
set -eu
attrs="${STEADFAST_SEARCH_ATTRIBUTES:-BatchId=Keyword ItemStatus=Keyword Provider=Keyword ErrorType=Keyword ReviewSince=Datetime ParentBatch=Keyword}"
ns="${TEMPORAL_NAMESPACE:-default}"
timeout="${STEADFAST_SETUP_TIMEOUT:-120}"
cli="${TEMPORAL:-temporal}"
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
say() { echo "temporal-register: $*" >&2; }

# wait_for WHAT CMD...: retries CMD every second until it succeeds or the timeout passes.
wait_for() {
  what="$1"; shift
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -ge "$timeout" ]; then
      say "gave up after ${timeout} s waiting for $what; last error:"
      # Under set -e a failing last try ends the script here, with its own status.
      "$@" >&2
      exit 1
    fi
    sleep 1
  done
}

wait_for "the frontend at $TEMPORAL_ADDRESS" "$cli" operator cluster health
if ! "$cli" operator namespace describe --namespace "$ns" >/dev/null 2>&1; then
  say "creating namespace $ns"
  "$cli" operator namespace create --namespace "$ns" --retention 3d >&2
fi
# The frontend serves a new namespace once its namespace cache refreshed (seconds).
wait_for "namespace $ns" "$cli" operator search-attribute list --namespace "$ns"

for pair in $attrs; do
  sa="${pair%%=*}"
  type="${pair#*=}"
  if "$cli" operator search-attribute list --namespace "$ns" --output json | grep -q "\"$sa\""; then
    say "search attribute $sa already registered"
  else
    say "registering search attribute $sa ($type)"
    "$cli" operator search-attribute create --namespace "$ns" --name "$sa" --type "$type" >&2
  fi
done
# Check that all are visible before the workers start.
names=""
for pair in $attrs; do
  sa="${pair%%=*}"
  wait_for "search attribute $sa" sh -c "\"$cli\" operator search-attribute list --namespace \"$ns\" --output json | grep -q '\"$sa\"'"
  names="${names:+$names, }$sa"
done
say "namespace $ns ready with search attributes $names"
