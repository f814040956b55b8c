#!/usr/bin/env bash
# End-to-end benchmark of fetchctl against the tools its users would pick
# instead, on a loopback server. Run through `make bench`.
#
# For each scenario and each run, a fresh server is started (so its
# connection and peak-in-flight counters start at zero), the URL list is
# written, one tool fetches that list under /usr/bin/time, and the server's
# counters are read when it stops. Tools take turns run by run (fetchctl 1,
# curl 1, aiohttp 1, ..., fetchctl 2, ...), and the table shows per-tool medians.
#
#   S1      20,000 URLs round-robin over 50 hosts, no latency, limit 100, per-host 20
#   S2      6,000 URLs sorted by host over 60 hosts, 50 ms latency, limit 100, per-host 4
#   S1-TLS  S1 over TLS with HTTP/2
#   S2-TLS  S2 over TLS with HTTP/1.1: handshakes and connection reuse decide
#   S3      fetchctl alone: 100,000 and 1,000,000 URLs piped on stdin, 50 hosts (peak RSS)
#
# The peers run when they can and are skipped, with a line saying so, when
# not: curl (`--parallel --parallel-max LIMIT`), the aiohttp pattern
# (scripts/bench/aiohttp_fetch.py on /usr/bin/python3), vegeta (`attack
# -lazy -rate 0`, built once with go into $BENCH_OUT/bin) and a plain Go
# pool (scripts/bench/gopool: net/http, LIMIT workers, a semaphore per host).
# Over TLS every tool trusts the run's self-signed certificate (--cacert).
#
# BENCH_SERVER chooses the server: "fast" is bin/fetchtarget
# with its fast HTTP/1.1 responder for plain HTTP, which leaves more of the
# shared cores to the tool measured, and net/http's server over TLS;
# "net/http" is bin/fetchtarget through net/http's server throughout, as in
# the tests; "nginx" is Debian's nginx with one worker (scripts/bench/nginx.sh),
# which also counts TLS handshakes, full and resumed. Without nginx or its
# echo module (libnginx-mod-http-echo) the bench says so and measures nothing
# against it. Unset, the bench runs with "fast" and then, when nginx is
# installed, once more with "nginx" into $BENCH_OUT/nginx. The results say
# which server answered each scenario.
#
# Environment: BENCH_RUNS (3) runs per tool in S1, S2, S1-TLS and S2-TLS;
# BENCH_S3_RUNS (1); BENCH_SCENARIOS ("S1 S2 S1-TLS S2-TLS S3");
# BENCH_S3_SIZES ("100000 1000000"); BENCH_TOOLS ("fetchctl curl aiohttp
# vegeta gopool"); BENCH_SERVER (fast, then nginx); BENCH_OUT (bench-out); BENCH_PROFILE
# (unset): a number of URLs for one extra S1-TLS run of a fetchctl built with
# a CPU profile, written to $BENCH_OUT/fetchctl-S1-TLS.pprof with its top 10.
# Results: $BENCH_OUT/results.md (also printed) and $BENCH_OUT/runs.tsv (every run).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
s3_runs=${BENCH_S3_RUNS:-1}
scenarios=${BENCH_SCENARIOS:-S1 S2 S1-TLS S2-TLS S3}
s3_sizes=${BENCH_S3_SIZES:-100000 1000000}
want_tools=${BENCH_TOOLS:-fetchctl curl aiohttp vegeta gopool}
profile_urls=${BENCH_PROFILE:-}
vegeta_version=v12.13.0
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
[ -z "$profile_urls" ] || [[ $profile_urls =~ ^[1-9][0-9]*$ ]] || die "BENCH_PROFILE must be a number of URLs, not \"$profile_urls\""
# shellcheck source=scripts/bench/nginx.sh disable=SC1091 # checked on its own
. scripts/bench/nginx.sh
case $server in
fast) server_flags=(-fast) ;;
net/http) server_flags=() ;;
nginx)
	server_flags=()
	nginx_check
	if [ -n "$nginx_missing" ]; then
		note "BENCH_SERVER=nginx: $nginx_missing; nothing measured (BENCH_SERVER=fast measures against bin/fetchtarget)"
		exit 0
	fi
	;;
*) die "BENCH_SERVER must be fast, net/http or nginx, not \"$server\"" ;;
esac
[ -x bin/fetchtarget ] || die "bin/fetchtarget is missing: run make build"
[ -x /usr/bin/time ] || die "GNU time is needed to measure CPU and peak memory: apt-get install time"
command -v go >/dev/null || die "go is needed to build scripts/bench/tally"

work=$out/work
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh
bench_start

tools=()
skipped=()
for t in $want_tools; do
	add_tool "$t" && continue
	case $t in
	vegeta)
		# Built once from the module proxy (or Go's module cache).
		if [ -x "$out/bin/vegeta" ] || GOBIN="$(cd "$out" && pwd)/bin" go install "github.com/tsenart/vegeta/v12@$vegeta_version" 2>"$work/vegeta-build.log"; then
			tools+=(vegeta)
		else
			skipped+=("vegeta: could not build github.com/tsenart/vegeta/v12@$vegeta_version (see $work/vegeta-build.log); skipped")
		fi
		;;
	*) die "unknown tool \"$t\" in BENCH_TOOLS (fetchctl, curl, aiohttp, vegeta, gopool)" ;;
	esac
done
for s in "${skipped[@]}"; do
	note "$s"
done

clk=$(getconf CLK_TCK)
# target_cpu: CPU seconds (user+sys) the server has used so far (nginx: its
# worker's).
target_cpu() {
	awk -v t="$clk" '{ printf "%.2f", ($14 + $15) / t }' "/proc/${cpu_pid:-$target_pid}/stat"
}

target_pid=
cpu_pid=
target_server=
cacert=
# stop_target: stop the server; its counters land in $work/counts as
# "requests conns peak_host tls_full tls_resumed" (-1: not counted).
stop_target() {
	[ -n "$target_pid" ] || return 0
	if [ "$server" = nginx ]; then
		nginx_stop
		return
	fi
	kill -INT "$target_pid" 2>/dev/null || true
	wait "$target_pid" 2>/dev/null || true
	target_pid=
	[ -s "$work/stats.json" ] || die "the target wrote no counters"
	echo "$("$tally" target "$work/stats.json") -1 -1" >"$work/counts"
}
cleanup() {
	stop_target
	nginx_cleanup
}
trap cleanup EXIT

# start_target HOSTS LATENCY_MS URLS SORTED TLS H2: serve HOSTS hosts and
# write URLS URLs to $work/urls.txt, then wait until the server is ready.
start_target() {
	local hosts=$1 latency=$2 urls=$3 sorted=$4 tls=$5 h2=$6 flags=("${server_flags[@]}")
	rm -f "$work/ready.json" "$work/stats.json" "$work/urls.txt" "$work/counts"
	if [ "$server" = nginx ]; then
		[ -n "$nginx_dir" ] || nginx_setup
		cacert=$nginx_dir/cert.pem
		nginx_start "$hosts" "$latency" "$urls" "$sorted" "$tls" "$h2"
		return
	fi
	[ "$sorted" = 1 ] && flags+=(-sorted)
	if [ "$tls" = 1 ]; then
		# The fast responder serves plain HTTP/1.1 only.
		flags=(-tls -cert "$work/cert.pem")
		[ "$sorted" = 1 ] && flags+=(-sorted)
		[ "$h2" = 1 ] && flags+=(-http2)
		cacert=$work/cert.pem
	fi
	bin/fetchtarget -hosts "$hosts" -latency "${latency}ms" -body "$body" -urls "$urls" "${flags[@]}" \
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
printf 'scenario\ttool\trun\turls\thosts\tper_host\tideal_s\twall_s\tuser_s\tsys_s\tmax_rss_kib\trequests\tconns\tpeak_host\tanswered\tdistinct\tok\texit\ttarget_cpu_s\ttls_full\ttls_resumed\n' >"$rows"

# one SCENARIO TOOL RUN URLS HOSTS LATENCY_MS SORTED LIMIT PER_HOST [stdin]:
# one timed run of one tool on a fresh target, appended to runs.tsv. It fails,
# appending nothing, when the target did not live through the run.
one() {
	local sc=$1 tool=$2 run=$3 urls=$4 hosts=$5 lat=$6 sorted=$7 limit=$8 per=$9 mode=${10:-file}
	local ideal code=0 wall user sys rss requests conns peak full resumed answered distinct ok cpu0 tcpu
	local tls=0 h2=0 h2flag=false
	case $sc in
	S1-TLS) tls=1 h2=1 h2flag=true ;;
	S2-TLS) tls=1 ;;
	esac
	ideal=$(awk -v n="$urls" -v l="$limit" -v h="$hosts" -v p="$per" -v ms="$lat" \
		'BEGIN { a = n / l; b = n / (h * p); if (b > a) a = b; printf "%.3f", a * ms / 1000 }')
	start_target "$hosts" "$lat" "$urls" "$sorted" "$tls" "$h2"
	local list=$work/urls.txt
	rm -f "$work/time" "$work/answers" "$work/fetchctl.ndjson" "$work/vegeta.bin"
	cpu0=$(target_cpu)
	# What each tool is told over TLS: trust the run's certificate, and
	# offer HTTP/2 or only HTTP/1.1.
	local fetchctl_tls=() curl_tls=() py_tls=() vegeta_tls=() gopool_tls=()
	if [ "$tls" = 1 ]; then
		fetchctl_tls=(--cacert "$cacert" "--http2=$h2flag")
		curl_tls=(--cacert "$cacert")
		if [ "$h2" = 1 ]; then curl_tls+=(--http2); else curl_tls+=(--http1.1); fi
		py_tls=(--cacert "$cacert")
		vegeta_tls=(-root-certs "$cacert")
		gopool_tls=(-cacert "$cacert")
	fi
	case $tool in
	fetchctl)
		local args=(--limit "$limit" --per-host "$per" --retries 0 --progress never -q --summary "$work/summary.json" "${fetchctl_tls[@]}")
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
		timed curl --parallel --parallel-max "$limit" --no-progress-meter "${curl_tls[@]}" -K "$work/curl.cfg" \
			-w '%{http_code} %{url_effective}\n' >"$work/curl.out" 2>"$work/curl.err" || code=$?
		"$tally" curl "$work/curl.out" >"$work/answers"
		;;
	aiohttp)
		timed "$python" scripts/bench/aiohttp_fetch.py "$list" --limit "$limit" --per-host "$per" "${py_tls[@]}" \
			>"$work/answers" 2>"$work/aiohttp.err" || code=$?
		;;
	vegeta)
		# -lazy reads the targets as it goes and stops at their end;
		# -max-body 0 reads bodies without keeping them.
		sed 's/^/GET /' "$list" >"$work/vegeta.targets"
		timed "$out/bin/vegeta" attack -lazy -rate 0 -workers "$limit" -max-workers "$limit" \
			-max-connections "$per" -max-body 0 -timeout 60s "-http2=$h2flag" "${vegeta_tls[@]}" \
			-targets "$work/vegeta.targets" -output "$work/vegeta.bin" 2>"$work/vegeta.err" || code=$?
		"$out/bin/vegeta" encode --to json "$work/vegeta.bin" | "$tally" vegeta - >"$work/answers"
		;;
	gopool)
		timed "$out/bin/gopool" -limit "$limit" -per-host "$per" "-http2=$h2flag" "${gopool_tls[@]}" "$list" \
			>"$work/answers" 2>"$work/gopool.err" || code=$?
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
	[ -s "$work/time" ] || die "$sc: $tool: GNU time wrote nothing"
	read -r wall user sys rss < <(tail -n 1 "$work/time")
	read -r requests conns peak full resumed <"$work/counts"
	# nginx logs times to the millisecond: without latency, requests
	# overlap within one and their peak cannot be told.
	if [ "$server" = nginx ] && [ "$lat" = 0 ]; then peak=-1; fi
	read -r answered distinct ok < <(cat "$work/answers" 2>/dev/null || echo "0 0 0")
	: "${answered:=0}" "${distinct:=0}" "${ok:=0}"
	printf '%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n' \
		"$sc" "$tool" "$run" "$urls" "$hosts" "$per" "$ideal" "$wall" "$user" "$sys" "$rss" \
		"$requests" "$conns" "$peak" "$answered" "$distinct" "$ok" "$code" "$tcpu" "$full" "$resumed" >>"$rows"
	local hs=""
	[ "$tls" = 1 ] && [ "$full" -ge 0 ] && hs=", TLS $full full $resumed resumed"
	note "$sc run $run $tool: ${wall}s wall, $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')s CPU, $((rss / 1024)) MiB, $answered/$urls answered, $conns conns$hs, peak/host $peak, server ${tcpu}s CPU, exit $code"
	served[$sc]=$target_server
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
	[S1-TLS]="S1-TLS: S1 over TLS with HTTP/2"
	[S2-TLS]="S2-TLS: S2 over TLS with HTTP/1.1 (ideal 3.0 s)"
	[S3]="S3: URLs piped on stdin, 50 hosts, no latency, limit 100, per-host 20 (fetchctl only)"
)
# The server that answered each scenario, as it said.
declare -A served=()

for sc in $scenarios; do
	case $sc in
	S1 | S2 | S1-TLS | S2-TLS)
		for ((r = 1; r <= runs; r++)); do
			for t in "${tools[@]}"; do
				case $sc in
				S1 | S1-TLS) measure "$sc" "$t" "$r" 20000 50 0 0 100 20 ;;
				*) measure "$sc" "$t" "$r" 6000 60 50 1 100 4 ;;
				esac
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
	*) die "unknown scenario \"$sc\" in BENCH_SCENARIOS (S1, S2, S1-TLS, S2-TLS, S3)" ;;
	esac
done
# profile_s1tls URLS: one S1-TLS run (URLS URLs) of a fetchctl whose main
# writes a CPU profile, built with an overlay so that the tree is untouched;
# the profile and its top entries (cumulative, then flat) land in $out.
profile_s1tls() {
	local n=$1 prof=$out/fetchctl-S1-TLS.pprof top=$out/fetchctl-S1-TLS.top
	rm -f "$top"
	printf '{"Replace":{"%s/cmd/fetchctl/main.go":"%s/scripts/bench/cpuprofile_main.go.in"}}\n' "$PWD" "$PWD" >"$work/overlay.json"
	CGO_ENABLED=0 go build -trimpath -overlay "$work/overlay.json" -o "$out/bin/fetchctl-prof" ./cmd/fetchctl ||
		die "could not build the profiling fetchctl"
	start_target 50 0 "$n" 0 1 1
	timed env FETCHCTL_CPUPROFILE="$prof" "$out/bin/fetchctl-prof" run "$work/urls.txt" --limit 100 --per-host 20 \
		--retries 0 --progress never -q --cacert "$cacert" --http2 -o /dev/null || note "profile run: fetchctl exited $?"
	stop_target
	read -r wall user sys _ < <(tail -n 1 "$work/time")
	{
		echo "$n URLs in ${wall} s wall, $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') s CPU, against $target_server"
		echo
		go tool pprof -top -cum -nodecount=10 "$out/bin/fetchctl-prof" "$prof" 2>/dev/null | sed -n '/flat%/,$p'
		echo
		go tool pprof -top -nodecount=10 "$out/bin/fetchctl-prof" "$prof" 2>/dev/null | sed -n '/flat%/,$p'
	} >"$top"
	note "CPU profile of fetchctl on S1-TLS: $prof ($top)"
}
if [ -n "$profile_urls" ]; then
	profile_s1tls "$profile_urls"
fi
rm -f "$work/urls.txt" "$work/curl.cfg" "$work/curl.out" "$work/fetchctl.ndjson" "$work/vegeta.bin" "$work/vegeta.targets"

versions=
for t in "${tools[@]}"; do
	case $t in
	fetchctl) versions+=", $(bin/fetchctl version 2>/dev/null | head -n 1 || echo 'fetchctl ?')" ;;
	curl) versions+=", $(curl --version | head -n 1 | cut -d' ' -f1-2)" ;;
	aiohttp) versions+=", aiohttp $("$python" -c 'import aiohttp; print(aiohttp.__version__)') on $("$python" --version 2>&1)" ;;
	vegeta) versions+=", vegeta $vegeta_version" ;;
	gopool) versions+=", Go pool (scripts/bench/gopool)" ;;
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
	echo "- Method: a loopback server (${body} bodies), restarted for every run; tools interleaved run by run;"
	echo "  medians of $runs runs in S1, S2, S1-TLS and S2-TLS; wall, CPU (user+sys) and peak RSS from GNU time;"
	echo "  connections, peak in flight per host, TLS handshakes and the server's own CPU counted by the server"
	echo "  (nginx: from its access log, to the millisecond; bin/fetchtarget does not count handshakes); retries off."
	echo "- Load average (1 min) at start and end: $load_start, $load_end"
	echo "- Server: BENCH_SERVER=$server"
	for s in "${skipped[@]}"; do
		echo "- Skipped: $s"
	done
	for sc in $scenarios; do
		echo
		echo "## ${title[$sc]}"
		echo
		echo "Server: ${served[$sc]:-?}"
		echo
		"$tally" table "$rows" "$sc"
	done
	echo
	echo "## Targets (issue 5)"
	echo
	"$tally" checks "$rows"
	echo
	echo "## Targets (issue 15: HTTPS, HTTP/2, memory)"
	echo
	if [ "$server" != nginx ]; then
		echo "Issue 15 judges these against nginx (BENCH_SERVER=nginx); here against BENCH_SERVER=$server."
		echo
	fi
	"$tally" checks "$rows" 15
	if [ -s "$out/fetchctl-S1-TLS.top" ]; then
		echo
		echo "## CPU profile of fetchctl on S1-TLS ($profile_urls URLs; $out/fetchctl-S1-TLS.pprof)"
		echo
		echo '```'
		cat "$out/fetchctl-S1-TLS.top"
		echo '```'
	fi
} >"$out/results.md"
cat "$out/results.md"

# Unset, BENCH_SERVER means both servers: nginx's run follows.
if [ -z "${BENCH_SERVER:-}" ]; then
	nginx_check
	if [ -n "$nginx_missing" ]; then
		note "against nginx: skipped: $nginx_missing"
	else
		note "now the same against nginx (results in $out/nginx)"
		trap - EXIT
		cleanup
		BENCH_SERVER=nginx BENCH_OUT=$out/nginx exec scripts/bench.sh
	fi
fi
