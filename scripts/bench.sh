#!/usr/bin/env bash
# End-to-end benchmark of fetchctl against the tools its users would pick
# instead, on the project's loopback target. Run through `make bench`.
#
# For each scenario and each run, a fresh bin/fetchtarget is started (so its
# connection and peak-in-flight counters start at zero), it writes the URL
# list, one tool fetches that list under /usr/bin/time, and the target's
# counters are read when it stops. Tools take turns run by run (fetchctl 1,
# curl 1, aiohttp 1, fetchctl 2, ...), and the table shows per-tool medians.
#
#   S1  20,000 URLs round-robin over 50 hosts, no latency, limit 100, per-host 20
#   S2  6,000 URLs sorted by host over 60 hosts, 50 ms latency, limit 100, per-host 4
#   S3  fetchctl alone: 100,000 and 1,000,000 URLs piped on stdin, 50 hosts (peak RSS)
#
# curl (`--parallel --parallel-max LIMIT`) and the aiohttp pattern
# (scripts/bench/aiohttp_fetch.py on /usr/bin/python3) run when installed and
# are skipped, with a line saying so, when not. Nothing is installed.
#
# The target answers through its fast HTTP/1.1 responder (fetchtarget -fast),
# which leaves more of the shared cores to the tool measured; with
# BENCH_SERVER=net/http it answers through net/http's server, as in the tests.
# The results say which.
#
# Environment: BENCH_RUNS (3) runs per tool in S1 and S2; BENCH_S3_RUNS (1);
# BENCH_SCENARIOS ("S1 S2 S3"); BENCH_S3_SIZES ("100000 1000000");
# BENCH_TOOLS ("fetchctl curl aiohttp"); BENCH_SERVER (fast); BENCH_OUT (bench-out).
# Results: $BENCH_OUT/results.md (also printed) and $BENCH_OUT/runs.tsv (every run).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
s3_runs=${BENCH_S3_RUNS:-1}
scenarios=${BENCH_SCENARIOS:-S1 S2 S3}
s3_sizes=${BENCH_S3_SIZES:-100000 1000000}
want_tools=${BENCH_TOOLS:-fetchctl curl aiohttp}
out=${BENCH_OUT:-bench-out}
server=${BENCH_SERVER:-fast}
body=1KiB
python=/usr/bin/python3

die() {
	echo "bench: $*" >&2
	exit 1
}
note() { echo "bench: $*" >&2; }

[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not \"$runs\""
[[ $s3_runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_S3_RUNS must be a positive integer, not \"$s3_runs\""
case $server in
fast) server_flags=(-fast) ;;
net/http) server_flags=() ;;
*) die "BENCH_SERVER must be fast or net/http, not \"$server\"" ;;
esac
[ -x bin/fetchtarget ] || die "bin/fetchtarget is missing: run make build"
[ -x /usr/bin/time ] || die "GNU time is needed to measure CPU and peak memory: apt-get install time"
command -v go >/dev/null || die "go is needed to build scripts/bench/tally"

work=$out/work
mkdir -p "$work"
read -r load_start _ </proc/loadavg
if awk -v l="$load_start" 'BEGIN { exit !(l > 0.5) }'; then
	note "load average is $load_start before starting: other work on this machine will make the figures noisy"
fi
tally=$out/tally
go build -o "$tally" ./scripts/bench/tally

# Every tool gets the same open-file limit; the target needs one descriptor
# per connection it serves.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tools=()
skipped=()
for t in $want_tools; do
	case $t in
	fetchctl)
		[ -x bin/fetchctl ] || die "bin/fetchctl is missing: run make build"
		tools+=(fetchctl)
		;;
	curl)
		if command -v curl >/dev/null; then
			tools+=(curl)
		else
			skipped+=("curl: not installed (Debian package curl); skipped")
		fi
		;;
	aiohttp)
		if [ -x "$python" ] && "$python" -c 'import aiohttp' 2>/dev/null; then
			tools+=(aiohttp)
		else
			skipped+=("aiohttp: $python with aiohttp not installed (Debian package python3-aiohttp); skipped")
		fi
		;;
	*) die "unknown tool \"$t\" in BENCH_TOOLS (fetchctl, curl, aiohttp)" ;;
	esac
done
for s in "${skipped[@]}"; do
	note "$s"
done

clk=$(getconf CLK_TCK)
# target_cpu: CPU seconds (user+sys) the target has used so far.
target_cpu() {
	awk -v t="$clk" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$target_pid/stat"
}

target_pid=
target_server=
stop_target() {
	[ -n "$target_pid" ] || return 0
	kill -INT "$target_pid" 2>/dev/null || true
	wait "$target_pid" 2>/dev/null || true
	target_pid=
}
trap stop_target EXIT

# start_target HOSTS LATENCY URLS SORTED: serve HOSTS hosts and write URLS
# URLs to $work/urls.txt, then wait until the target is ready.
start_target() {
	local hosts=$1 latency=$2 urls=$3 sorted=$4 flags=("${server_flags[@]}")
	[ "$sorted" = 1 ] && flags+=(-sorted)
	rm -f "$work/ready.json" "$work/stats.json" "$work/urls.txt"
	bin/fetchtarget -hosts "$hosts" -latency "$latency" -body "$body" -urls "$urls" "${flags[@]}" \
		-list "$work/urls.txt" -ready "$work/ready.json" -stats "$work/stats.json" 2>"$work/target.log" &
	target_pid=$!
	local i
	for ((i = 0; i < 600; i++)); do
		if [ -s "$work/ready.json" ]; then
			# What answers, as the target says in its ready file.
			target_server=$(sed -n 's/.*"server":"\([^"]*\)".*/\1/p' "$work/ready.json")
			return 0
		fi
		kill -0 "$target_pid" 2>/dev/null || break
		sleep 0.05
	done
	cat "$work/target.log" >&2
	die "the target server did not start"
}

# timed CMD...: run CMD under GNU time, stopped (SIGINT) after $deadline
# seconds; the figures land in $work/time. GNU time reports the largest peak
# RSS among the processes it waited for, which is the tool's.
deadline=300
timed() {
	/usr/bin/time -f '%e %U %S %M' -o "$work/time" timeout -s INT -k 10 "$deadline" "$@"
}

rows=$out/runs.tsv
printf 'scenario\ttool\trun\turls\thosts\tper_host\tideal_s\twall_s\tuser_s\tsys_s\tmax_rss_kib\trequests\tconns\tpeak_host\tanswered\tdistinct\tok\texit\ttarget_cpu_s\n' >"$rows"

# one SCENARIO TOOL RUN URLS HOSTS LATENCY_MS SORTED LIMIT PER_HOST [stdin]:
# one timed run of one tool on a fresh target, appended to runs.tsv. It fails,
# appending nothing, when the target did not live through the run.
one() {
	local sc=$1 tool=$2 run=$3 urls=$4 hosts=$5 lat=$6 sorted=$7 limit=$8 per=$9 mode=${10:-file}
	local ideal code=0 wall user sys rss requests conns peak answered distinct ok cpu0 tcpu
	ideal=$(awk -v n="$urls" -v l="$limit" -v h="$hosts" -v p="$per" -v ms="$lat" \
		'BEGIN { a = n / l; b = n / (h * p); if (b > a) a = b; printf "%.3f", a * ms / 1000 }')
	start_target "$hosts" "${lat}ms" "$urls" "$sorted"
	local list=$work/urls.txt
	rm -f "$work/time" "$work/answers" "$work/fetchctl.ndjson"
	cpu0=$(target_cpu)
	case $tool in
	fetchctl)
		local args=(--limit "$limit" --per-host "$per" --retries 0 --progress never -q --summary "$work/summary.json")
		if [ "$mode" = stdin ]; then
			# A real pipe on stdin, and the records read as they come.
			set +e
			# shellcheck disable=SC2002 # the list must come through a pipe, not a file
			cat "$list" | timed bin/fetchctl run - "${args[@]}" | "$tally" ndjson - >"$work/answers"
			local st=("${PIPESTATUS[@]}")
			set -e
			code=${st[1]}
			[ "${st[2]}" = 0 ] || die "$sc: could not read fetchctl's records"
		else
			timed bin/fetchctl run "$list" "${args[@]}" -o "$work/fetchctl.ndjson" || code=$?
			"$tally" ndjson "$work/fetchctl.ndjson" >"$work/answers"
		fi
		;;
	curl)
		# Every URL gets its own output, /dev/null, and one write-out line.
		awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0 }' "$list" >"$work/curl.cfg"
		timed curl --parallel --parallel-max "$limit" --no-progress-meter -K "$work/curl.cfg" \
			-w '%{http_code} %{url_effective}\n' >"$work/curl.out" 2>"$work/curl.err" || code=$?
		"$tally" curl "$work/curl.out" >"$work/answers"
		;;
	aiohttp)
		timed "$python" scripts/bench/aiohttp_fetch.py "$list" --limit "$limit" --per-host "$per" \
			>"$work/answers" 2>"$work/aiohttp.err" || code=$?
		;;
	esac
	if ! kill -0 "$target_pid" 2>/dev/null; then
		wait "$target_pid" 2>/dev/null || true
		target_pid=
		note "$sc run $run $tool: the target stopped during the run (signalled by another process?)"
		return 1
	fi
	tcpu=$(awk -v a="$cpu0" -v b="$(target_cpu)" 'BEGIN { printf "%.2f", b - a }')
	stop_target
	[ -s "$work/stats.json" ] || die "$sc: the target wrote no counters"
	[ -s "$work/time" ] || die "$sc: $tool: GNU time wrote nothing"
	read -r wall user sys rss < <(tail -n 1 "$work/time")
	read -r requests conns peak < <("$tally" target "$work/stats.json")
	read -r answered distinct ok < <(cat "$work/answers" 2>/dev/null || echo "0 0 0")
	: "${answered:=0}" "${distinct:=0}" "${ok:=0}"
	printf '%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n' \
		"$sc" "$tool" "$run" "$urls" "$hosts" "$per" "$ideal" "$wall" "$user" "$sys" "$rss" \
		"$requests" "$conns" "$peak" "$answered" "$distinct" "$ok" "$code" "$tcpu" >>"$rows"
	note "$sc run $run $tool: ${wall}s wall, $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')s CPU, $((rss / 1024)) MiB, $answered/$urls answered, $conns conns, peak/host $peak, target ${tcpu}s CPU, exit $code"
}

# measure ARGS...: one, tried again (up to three times in all) when the
# target died under it.
measure() {
	local try
	for try in 1 2 3; do
		one "$@" && return 0
		[ "$try" = 3 ] || note "running it again"
	done
	die "$1 $2: the target stopped during three runs in a row"
}

declare -A title=(
	[S1]="S1: 20,000 URLs round-robin over 50 hosts, no latency, limit 100, per-host 20"
	[S2]="S2: 6,000 URLs sorted by host over 60 hosts, 50 ms latency, limit 100, per-host 4 (ideal 3.0 s)"
	[S3]="S3: URLs piped on stdin, 50 hosts, no latency, limit 100, per-host 20 (fetchctl only)"
)

for sc in $scenarios; do
	case $sc in
	S1 | S2)
		for ((r = 1; r <= runs; r++)); do
			for t in "${tools[@]}"; do
				if [ "$sc" = S1 ]; then
					measure S1 "$t" "$r" 20000 50 0 0 100 20
				else
					measure S2 "$t" "$r" 6000 60 50 1 100 4
				fi
			done
		done
		;;
	S3)
		if [[ " ${tools[*]} " != *" fetchctl "* ]]; then
			note "S3 measures fetchctl alone, which BENCH_TOOLS leaves out: skipped"
			continue
		fi
		for ((r = 1; r <= s3_runs; r++)); do
			for n in $s3_sizes; do
				deadline=900 measure S3 fetchctl "$r" "$n" 50 0 0 100 20 stdin
			done
		done
		;;
	*) die "unknown scenario \"$sc\" in BENCH_SCENARIOS (S1, S2, S3)" ;;
	esac
done
rm -f "$work/urls.txt" "$work/curl.cfg" "$work/curl.out" "$work/fetchctl.ndjson"

versions=
for t in "${tools[@]}"; do
	case $t in
	fetchctl) versions+=", $(bin/fetchctl version 2>/dev/null | head -n 1 || echo 'fetchctl ?')" ;;
	curl) versions+=", $(curl --version | head -n 1 | cut -d' ' -f1-2)" ;;
	aiohttp) versions+=", aiohttp $("$python" -c 'import aiohttp; print(aiohttp.__version__)') on $("$python" --version 2>&1)" ;;
	esac
done
read -r load_end _ </proc/loadavg
cpu=$(grep -m 1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)

{
	echo "# fetchctl benchmark"
	echo
	echo "- Machine: $(nproc) CPUs ($cpu), Linux $(uname -r), $(go version | cut -d' ' -f3-)"
	echo "- Tools: ${versions#, }"
	echo "- Command: \`make bench\` (scripts/bench.sh; BENCH_RUNS=$runs, BENCH_S3_RUNS=$s3_runs), $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- Method: loopback target bin/fetchtarget (${body} bodies), restarted for every run; tools interleaved run by run;"
	echo "  medians of $runs runs in S1 and S2; wall, CPU (user+sys) and peak RSS from GNU time;"
	echo "  connections, peak in flight per host and the target's own CPU counted by the target; retries off."
	echo "- Load average (1 min) at start and end: $load_start, $load_end"
	echo "- Server: ${target_server:-?} (BENCH_SERVER=$server)"
	for s in "${skipped[@]}"; do
		echo "- Skipped: $s"
	done
	for sc in $scenarios; do
		echo
		echo "## ${title[$sc]}"
		echo
		"$tally" table "$rows" "$sc"
	done
	echo
	echo "## Targets (issue 5)"
	echo
	"$tally" checks "$rows"
} >"$out/results.md"
cat "$out/results.md"
