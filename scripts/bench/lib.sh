# shellcheck shell=bash
# What scripts/bench.sh and scripts/bench/proxy.sh share. Sourced after
# they define die, note, $python, $out and $work.
# shellcheck disable=SC2154

# bench_start: note a busy machine, build the tally, and give every tool
# the same open-file limit (the target needs one descriptor per connection
# it serves). Sets load_start and tally.
bench_start() {
	mkdir -p "$work"
	read -r load_start _ </proc/loadavg
	if awk -v l="$load_start" 'BEGIN { exit !(l > 0.5) }'; then
		note "load average is $load_start before starting: other work on this machine will make the figures noisy"
	fi
	tally=$out/tally
	go build -o "$tally" ./scripts/bench/tally
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# add_tool NAME: appends NAME to tools when it can run, or a line saying
# why not to skipped; returns 1 for a tool it does not know.
add_tool() {
	case $1 in
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
	gopool)
		go build -o "$out/bin/gopool" ./scripts/bench/gopool
		tools+=(gopool)
		;;
	*) return 1 ;;
	esac
}
