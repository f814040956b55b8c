#!/usr/bin/env bash
# Peak memory of fetchctl with many proxies: RSS_PROXIES proxy URLs in a
# --proxy-file (each its own route: distinct user names over RSS_PORTS
# loopback forward proxies from scripts/rss) and RSS_URLS URLs over
# RSS_HOSTS hosts of bin/fetchtarget, the default preset, records to
# /dev/null. Prints the peak RSS that /usr/bin/time -v reports and fails
# when it passes RSS_MAX_MIB. Run through `make bench-rss`.
#
# Environment: RSS_PROXIES (1000), RSS_URLS (1000000), RSS_PORTS (4),
# RSS_HOSTS (50), RSS_MAX_MIB (64), RSS_OUT (bench-out/rss), RSS_ARGS (extra
# fetchctl flags), RSS_FETCHCTL (bin/fetchctl: another build to compare).
set -euo pipefail
cd "$(dirname "$0")/.."

proxies=${RSS_PROXIES:-1000}
urls=${RSS_URLS:-1000000}
ports=${RSS_PORTS:-4}
hosts=${RSS_HOSTS:-50}
max_mib=${RSS_MAX_MIB:-64}
out=${RSS_OUT:-bench-out/rss}
fetchctl=${RSS_FETCHCTL:-bin/fetchctl}
read -r -a extra <<<"${RSS_ARGS:-}"

die() {
	echo "rss: $*" >&2
	exit 1
}
{ [ -x "$fetchctl" ] && [ -x bin/fetchtarget ]; } || die "$fetchctl or bin/fetchtarget is missing: run make build"
[ -x /usr/bin/time ] || die "GNU time is needed: apt-get install time"
mkdir -p "$out"
go build -o "$out/proxies" ./scripts/rss
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -INT "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

# wait_for FILE PID: until FILE is written, or PID is gone.
wait_for() {
	local i
	for ((i = 0; i < 1200; i++)); do
		[ -s "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	die "$1 never appeared"
}

rm -f "$out/ready.json" "$out/proxies.ready" "$out/urls.txt"
bin/fetchtarget -hosts "$hosts" -body 256 -urls "$urls" -list "$out/urls.txt" -ready "$out/ready.json" 2>"$out/target.log" &
pids+=($!)
wait_for "$out/ready.json" "${pids[-1]}"
"$out/proxies" -ports "$ports" -ready "$out/proxies.ready" 2>"$out/proxies.log" &
pids+=($!)
wait_for "$out/proxies.ready" "${pids[-1]}"

mapfile -t addrs <"$out/proxies.ready"
for ((i = 0; i < proxies; i++)); do
	echo "http://user$i:pw@${addrs[i % ${#addrs[@]}]}"
done >"$out/proxies.txt"

echo "rss: $urls URLs over $hosts hosts through $proxies proxies ($ports loopback ports)" >&2
code=0
/usr/bin/time -v -o "$out/time.txt" "$fetchctl" run -q --progress never --proxy-file "$out/proxies.txt" \
	--summary "$out/summary.json" "${extra[@]}" "$out/urls.txt" >/dev/null || code=$?
rss_kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$out/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$out/time.txt")
ok=$(jq -r .ok "$out/summary.json" 2>/dev/null || echo "?")
printf 'rss: exit %s, ok %s of %s, wall %s, peak RSS %s KiB (%.1f MiB), limit %s MiB\n' \
	"$code" "${ok:-?}" "$urls" "$wall" "$rss_kib" "$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')" "$max_mib"
[ "$code" = 0 ] || die "fetchctl exited $code"
[ "$rss_kib" -le $((max_mib * 1024)) ] || die "peak RSS $rss_kib KiB is above $max_mib MiB"
