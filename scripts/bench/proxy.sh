#!/usr/bin/env bash
# The proxy scenario of `make bench`: fetchctl, curl, the aiohttp pattern and
# a plain Go pool fetch the same list through one gateway a set round trip
# away.
#
#   P1  2,000 URLs round-robin over 20 hosts, through a gateway 100 ms away,
#       limit 100, per-host 10; two variants:
#         http   plain-http targets, forwarded by the gateway
#         https  TLS targets that speak HTTP/2, through CONNECT tunnels
#
# The gateway is bin/fetchtarget -gateway -rtt (cmd/fetchtarget/internal/
# gateway): a new connection to it costs one round trip before its first
# request, every exchange one more, and inside a tunnel the bytes take half a
# round trip each way. It counts the connections opened to it and the
# tunnels. For each run a fresh target and gateway start; tools take turns
# run by run and the table shows per-tool medians.
#
# The ideal wall is N / limit × RTT plus one connection setup: one round trip
# (TCP) for forwarded requests, three (TCP, CONNECT, TLS) through a tunnel.
# Efficiency is the ideal over the wall.
#
#   fetchctl run LIST --proxy http://GW --limit 100 --per-host 10
#   curl --parallel --parallel-max 100 -x http://GW -K LIST-as-config
#   scripts/bench/aiohttp_fetch.py LIST --proxy http://GW --limit 100 --per-host 10
#   scripts/bench/gopool -proxy http://GW -limit 100 -per-host 10 LIST
#
# The Go pool (net/http, the client most Go fetchers are built on) shows what
# the gateway allows a client with no work of its own beyond net/http's.
#
# curl and the aiohttp pattern (python3-aiohttp) are skipped, with a line
# saying so, when missing. Environment: BENCH_RUNS (3), BENCH_TOOLS
# ("fetchctl curl aiohttp gopool"), BENCH_PROXY_VARIANTS ("http https"),
# BENCH_PROXY_RTT_MS (100), BENCH_OUT (bench-out). Results:
# $BENCH_OUT/proxy.md (also printed) and $BENCH_OUT/proxy-runs.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${BENCH_RUNS:-3}
want_tools=${BENCH_TOOLS:-fetchctl curl aiohttp gopool}
variants=${BENCH_PROXY_VARIANTS:-http https}
rtt_ms=${BENCH_PROXY_RTT_MS:-100}
out=${BENCH_OUT:-bench-out}
urls=2000 hosts=20 limit=100 per=10
python=/usr/bin/python3

die() {
	echo "bench proxy: $*" >&2
	exit 1
}
note() { echo "bench proxy: $*" >&2; }

[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not \"$runs\""
[[ $rtt_ms =~ ^[1-9][0-9]*$ ]] || die "BENCH_PROXY_RTT_MS must be a positive integer, not \"$rtt_ms\""
for v in $variants; do
	[[ $v == http || $v == https ]] || die "unknown variant \"$v\" in BENCH_PROXY_VARIANTS (http, https)"
done
[ -x bin/fetchtarget ] || die "bin/fetchtarget is missing: run make build"
[ -x /usr/bin/time ] || die "GNU time is needed: apt-get install time"
command -v jq >/dev/null || die "jq is needed to read the gateway's counters: apt-get install jq"

work=$out/proxy-work
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh
bench_start

tools=()
skipped=()
for t in $want_tools; do
	add_tool "$t" || die "unknown tool \"$t\" in BENCH_TOOLS (fetchctl, curl, aiohttp, gopool)"
done
for s in "${skipped[@]}"; do
	note "$s"
done

target_pid=
stop_target() {
	[ -n "$target_pid" ] || return 0
	kill -INT "$target_pid" 2>/dev/null || true
	wait "$target_pid" 2>/dev/null || true
	target_pid=
}
trap stop_target EXIT

# start_target VARIANT: a fresh target and gateway; sets gw and server.
gw='' server=''
start_target() {
	local flags=(-fast)
	[ "$1" = https ] && flags=(-tls -http2 -cert "$work/cert.pem")
	rm -f "$work/ready.json" "$work/stats.json" "$work/urls.txt"
	bin/fetchtarget -hosts "$hosts" -urls "$urls" -body 1KiB "${flags[@]}" -gateway -rtt "${rtt_ms}ms" \
		-list "$work/urls.txt" -ready "$work/ready.json" -stats "$work/stats.json" 2>"$work/target.log" &
	target_pid=$!
	local i
	for ((i = 0; i < 600; i++)); do
		if [ -s "$work/ready.json" ]; then
			gw=$(jq -r .gateway "$work/ready.json")
			server=$(jq -r .server "$work/ready.json")
			return 0
		fi
		kill -0 "$target_pid" 2>/dev/null || break
		sleep 0.05
	done
	cat "$work/target.log" >&2
	die "the target did not start"
}

timed() {
	/usr/bin/time -f '%e %U %S %M' -o "$work/time" timeout -s INT -k 10 300 "$@"
}

rows=$out/proxy-runs.tsv
printf 'variant\ttool\trun\twall_s\tcpu_s\tgw_conns\tgw_tunnels\tgw_forwarded\tanswered\tdistinct\tok\texit\tserver\n' >"$rows"

# one VARIANT TOOL RUN: one timed run, appended to the runs.
one() {
	local v=$1 tool=$2 run=$3 code=0 cacert=() wall user sys answered distinct ok
	start_target "$v"
	[ "$v" = https ] && cacert=(--cacert "$work/cert.pem")
	rm -f "$work/time" "$work/answers"
	case $tool in
	fetchctl)
		timed bin/fetchctl run "$work/urls.txt" --proxy "http://$gw" "${cacert[@]}" --limit "$limit" \
			--per-host "$per" --retries 0 --progress never -q --overwrite -o "$work/fetchctl.ndjson" || code=$?
		"$tally" ndjson "$work/fetchctl.ndjson" >"$work/answers"
		;;
	curl)
		awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0 }' "$work/urls.txt" >"$work/curl.cfg"
		timed curl --parallel --parallel-max "$limit" -x "http://$gw" "${cacert[@]}" --no-progress-meter \
			-K "$work/curl.cfg" -w '%{http_code} %{url_effective}\n' >"$work/curl.out" 2>"$work/curl.err" || code=$?
		"$tally" curl "$work/curl.out" >"$work/answers"
		;;
	aiohttp)
		timed "$python" scripts/bench/aiohttp_fetch.py "$work/urls.txt" --proxy "http://$gw" "${cacert[@]}" \
			--limit "$limit" --per-host "$per" >"$work/answers" 2>"$work/aiohttp.err" || code=$?
		;;
	gopool)
		local gtls=()
		[ "$v" = https ] && gtls=(-cacert "$work/cert.pem" -http2)
		timed "$out/bin/gopool" -proxy "http://$gw" "${gtls[@]}" -limit "$limit" -per-host "$per" "$work/urls.txt" \
			>"$work/answers" 2>"$work/gopool.err" || code=$?
		;;
	esac
	stop_target
	[ -s "$work/stats.json" ] || die "$v $tool: the target wrote no counters"
	read -r wall user sys _ < <(tail -n 1 "$work/time")
	read -r answered distinct ok < <(cat "$work/answers" 2>/dev/null || echo "0 0 0")
	local g
	g=$(jq -r '.gateway | "\(.conns)\t\(.tunnels)\t\(.forwarded)"' "$work/stats.json")
	printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n' "$v" "$tool" "$run" "$wall" \
		"$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" "$g" \
		"${answered:-0}" "${distinct:-0}" "${ok:-0}" "$code" "$server" >>"$rows"
	note "$v run $run $tool: ${wall}s wall, gateway $(echo "$g" | cut -f1) connections, $(echo "$g" | cut -f2) tunnels, ${answered:-0}/$urls answered, exit $code"
}

for ((r = 1; r <= runs; r++)); do
	for v in $variants; do
		for t in "${tools[@]}"; do
			one "$v" "$t" "$r"
		done
	done
done
rm -f "$work/urls.txt" "$work/curl.cfg" "$work/curl.out" "$work/fetchctl.ndjson"
read -r load_end _ </proc/loadavg

# The ideal: N / limit round trips, plus one connection setup.
ideal() {
	local setup=1
	[ "$1" = https ] && setup=3
	awk -v n="$urls" -v l="$limit" -v ms="$rtt_ms" -v s="$setup" 'BEGIN { printf "%.2f", (n / l + s) * ms / 1000 }'
}

# median VARIANT TOOL COLUMN: the median of a column over the runs.
median() {
	awk -F'\t' -v v="$1" -v t="$2" -v c="$3" 'NR > 1 && $1 == v && $2 == t { print $c }' "$rows" |
		sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

cpu=$(grep -m 1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
{
	echo "# fetchctl through a gateway ${rtt_ms} ms away"
	echo
	echo "- Machine: $(nproc) CPUs ($cpu), Linux $(uname -r), $(go version | cut -d' ' -f3-)"
	echo "- Command: \`make bench\` (scripts/bench/proxy.sh; BENCH_RUNS=$runs), $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- $urls URLs round-robin over $hosts hosts, limit $limit, per-host $per, 1 KiB bodies, retries off;"
	echo "  medians of $runs interleaved runs; a fresh target and gateway for every run."
	echo "- Gateway: bin/fetchtarget -gateway -rtt ${rtt_ms}ms (one round trip per new connection and per"
	echo "  exchange; inside a tunnel, half a round trip each way for the bytes)."
	echo "- Targets: http: $(awk -F'\t' 'NR > 1 && $1 == "http" { print $13; exit }' "$rows");" \
		"https: $(awk -F'\t' 'NR > 1 && $1 == "https" { print $13; exit }' "$rows") with TLS and HTTP/2"
	echo "- Load average (1 min) at start and end: $load_start, $load_end"
	for s in "${skipped[@]}"; do
		echo "- Skipped: $s"
	done
	echo
	echo "| targets | tool | wall s | efficiency | connections to the gateway | tunnels | answered |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for v in $variants; do
		id=$(ideal "$v")
		for t in "${tools[@]}"; do
			w=$(median "$v" "$t" 4)
			printf '| %s (ideal %s s) | %s | %.2f | %.2f | %s | %s | %s/%d |\n' "$v" "$id" "$t" "$w" \
				"$(awk -v i="$id" -v w="$w" 'BEGIN { print i / w }')" "$(median "$v" "$t" 6)" \
				"$(median "$v" "$t" 7)" "$(median "$v" "$t" 9)" "$urls"
		done
	done
	if [[ " ${tools[*]} " == *" fetchctl "* ]]; then
		echo
		echo "Targets (issue 14, item 6):"
		echo
		for v in $variants; do
			id=$(ideal "$v")
			w=$(median "$v" fetchctl 4)
			if [ "$v" = http ]; then
				awk -v i="$id" -v w="$w" 'BEGIN { e = i / w; printf "- http efficiency %.2f, at least 0.95: %s\n", e, (e >= 0.95 ? "pass" : "FAIL") }'
			else
				n=$(median https fetchctl 7)
				echo "- https tunnels $n, no more than $hosts hosts: $([ "${n%.*}" -le "$hosts" ] && echo pass || echo FAIL)"
			fi
			if [[ " ${tools[*]} " == *" curl "* ]]; then
				c=$(median "$v" curl 4)
				awk -v v="$v" -v w="$w" -v c="$c" 'BEGIN { printf "- %s wall %.2f s against curl'"'"'s %.2f s: %s\n", v, w, c, (w < c ? "pass" : "FAIL") }'
			fi
		done
	fi
} >"$out/proxy.md"
cat "$out/proxy.md"
