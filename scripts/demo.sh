#!/usr/bin/env bash
# A real fetch, offline: the project's target server poses as 8 hosts with
# 40 ms latency and a few faults, and fetchctl fetches 3,000 URLs from it with
# the progress bar. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-demo-out}
mkdir -p "$out"
# A run starts again: -o refuses a file that already holds results.
rm -f "$out/ready.json" "$out/results.ndjson" "$out/summary.json"

./bin/fetchtarget -hosts 8 -latency 40ms -body 2KiB -urls 3000 \
	-paths '/,/,/,/,/,/,/,/,/flaky?fail=1,/status/404,/429?after=1&times=1' \
	-list "$out/urls.txt" -ready "$out/ready.json" -stats "$out/target-stats.json" &
target=$!
trap 'kill "$target" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	[ -s "$out/ready.json" ] && break
	sleep 0.05
done
[ -s "$out/ready.json" ] || { echo "demo: the target server did not start" >&2; exit 1; }

echo "demo: fetching $(wc -l <"$out/urls.txt") URLs from 8 local hosts (40 ms latency)" >&2
set +e
./bin/fetchctl run "$out/urls.txt" --pool residential --backoff 50ms \
	--progress always -o "$out/results.ndjson" --summary "$out/summary.json"
code=$?
set -e
kill -INT "$target"
wait "$target" 2>/dev/null || true
trap - EXIT
echo "demo: exit code $code; records in $out/results.ndjson, summary in $out/summary.json" >&2
if command -v jq >/dev/null; then
	echo "demo: failures by kind:" >&2
	jq -r 'select(.ok|not) | .error.kind' "$out/results.ndjson" | sort | uniq -c >&2
fi
