# shellcheck shell=bash
# Debian's nginx as the benchmark's server (BENCH_SERVER=nginx), sourced by
# scripts/bench.sh. Every run gets a fresh nginx with one worker process, a
# generated config with one listener (one "host") per port on 127.0.0.1, a
# 1 KiB body answered by `return 200`, or after libnginx-mod-http-echo's
# echo_sleep when the scenario has latency, and an access log from which
# tally counts requests, connections, peak in flight per host and TLS
# handshakes ($ssl_session_reused). The worker runs as nobody, so everything
# it reads lives in a world-readable folder under /tmp.
#
# It uses bench.sh's die, $work (the scratch folder) and $tally, and sets
# variables bench.sh reads (nginx_missing, target_pid, cpu_pid, target_server).
# shellcheck disable=SC2154,SC2034

nginx_bin=/usr/sbin/nginx
nginx_echo=
nginx_dir=
nginx_ports=()

# nginx_check: finds nginx and the echo module, or sets nginx_missing to
# why not.
nginx_missing=
nginx_check() {
	[ -x "$nginx_bin" ] || nginx_bin=$(command -v nginx 2>/dev/null || true)
	if [ -z "$nginx_bin" ] || [ ! -x "$nginx_bin" ]; then
		nginx_missing="nginx is not installed (Debian package nginx)"
		return
	fi
	local m
	for m in /usr/lib/nginx/modules/ngx_http_echo_module.so /usr/share/nginx/modules/ngx_http_echo_module.so; do
		if [ -f "$m" ]; then
			nginx_echo=$m
			return
		fi
	done
	nginx_missing="nginx's echo module is not installed (Debian package libnginx-mod-http-echo)"
}

# nginx_setup: the folder, the certificate and the body, once per bench.
nginx_setup() {
	nginx_dir=$(mktemp -d /tmp/fetchctl-bench-nginx.XXXXXX)
	chmod 755 "$nginx_dir"
	bin/fetchtarget -certdir "$nginx_dir" || die "could not write nginx's certificate"
	mkdir -p "$nginx_dir/tmp"
	nginx_body=$(head -c 1024 /dev/zero | tr '\0' x)
}

nginx_cleanup() {
	[ -n "$nginx_dir" ] || return 0
	rm -rf "$nginx_dir"
	nginx_dir=
}

# nginx_pick_ports HOSTS: HOSTS consecutive ports below the ephemeral range
# (where clients' own ports come from) that no TCP socket uses.
nginx_pick_ports() {
	local hosts=$1 base p used low=32768
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	[ "$low" -gt $((10000 + hosts * 2)) ] || low=32768
	used=$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u)
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		base=$((10000 + RANDOM % (low - 10000 - hosts)))
		nginx_ports=()
		for ((p = base; p < base + hosts; p++)); do
			if grep -qx "$p" <<<"$used"; then
				continue 2
			fi
			nginx_ports+=("$p")
		done
		return 0
	done
	die "found no $hosts free consecutive ports for nginx"
}

# nginx_config HOSTS LATENCY_MS TLS H2: the config for one run.
nginx_config() {
	local hosts=$1 lat=$2 tls=$3 h2=$4 listen content p
	listen=""
	[ "$tls" = 1 ] && listen=" ssl"
	[ "$h2" = 1 ] && listen+=" http2"
	if [ "$lat" -gt 0 ]; then
		content="echo_sleep $(awk -v ms="$lat" 'BEGIN { printf "%.3f", ms / 1000 }'); echo -n \"$nginx_body\";"
	else
		content="return 200 \"$nginx_body\";"
	fi
	echo "worker_processes 1;"
	[ "$(id -u)" = 0 ] && echo "user nobody nogroup;"
	cat <<EOF
daemon off;
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/error.log warn;
load_module $nginx_echo;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
	default_type text/plain;
	log_format bench '\$server_port \$connection \$connection_requests \$ssl_session_reused \$msec \$request_time \$status';
	access_log $nginx_dir/access.log bench buffer=1m;
	keepalive_requests 100000000;
	keepalive_timeout 300s;
	client_body_temp_path $nginx_dir/tmp/body;
	proxy_temp_path $nginx_dir/tmp/proxy;
	fastcgi_temp_path $nginx_dir/tmp/fastcgi;
	uwsgi_temp_path $nginx_dir/tmp/uwsgi;
	scgi_temp_path $nginx_dir/tmp/scgi;
	ssl_certificate $nginx_dir/cert.pem;
	ssl_certificate_key $nginx_dir/key.pem;
	ssl_session_cache shared:bench:10m;
EOF
	for p in "${nginx_ports[@]:0:$hosts}"; do
		printf '\tserver { listen 127.0.0.1:%s%s; location / { %s } }\n' "$p" "$listen" "$content"
	done
	echo "}"
}

# nginx_list URLS HOSTS SORTED SCHEME: the URL list on stdout, in
# fetchtarget's order: URL i on host i mod HOSTS, or with SORTED on host
# i*HOSTS/URLS, each with key=i.
nginx_list() {
	awk -v n="$1" -v h="$2" -v sorted="$3" -v scheme="$4" -v ports="${nginx_ports[*]}" 'BEGIN {
		split(ports, p, " ")
		for (i = 0; i < n; i++) {
			k = sorted ? int(i * h / n) : i % h
			printf "%s://127.0.0.1:%s/?key=%d\n", scheme, p[k + 1], i
		}
	}'
}

# nginx_start HOSTS LATENCY_MS URLS SORTED TLS H2: a fresh nginx and the URL
# list in $work/urls.txt; sets target_pid (the master), cpu_pid (the worker)
# and target_server.
nginx_start() {
	local hosts=$1 lat=$2 urls=$3 sorted=$4 tls=$5 h2=$6 scheme=http i
	[ "$tls" = 1 ] && scheme=https
	for _ in 1 2 3 4 5; do
		nginx_pick_ports "$hosts"
		nginx_config "$hosts" "$lat" "$tls" "$h2" >"$nginx_dir/nginx.conf"
		rm -f "$nginx_dir/access.log" "$nginx_dir/error.log" "$nginx_dir/nginx.pid"
		"$nginx_bin" -p "$nginx_dir" -e "$nginx_dir/error.log" -c "$nginx_dir/nginx.conf" 2>>"$work/target.log" &
		target_pid=$!
		cpu_pid=
		for ((i = 0; i < 200; i++)); do
			if [ -z "$cpu_pid" ] && [ -s "$nginx_dir/nginx.pid" ]; then
				cpu_pid=$(awk '{ print $1 }' "/proc/$target_pid/task/$target_pid/children" 2>/dev/null || true)
			fi
			if [ -n "$cpu_pid" ]; then
				nginx_list "$urls" "$hosts" "$sorted" "$scheme" >"$work/urls.txt"
				target_server="nginx $("$nginx_bin" -v 2>&1 | sed 's,.*nginx/,,') (1 worker"
				[ "$tls" = 1 ] && target_server+=", TLS"
				if [ "$h2" = 1 ]; then target_server+=", HTTP/2)"; else target_server+=", HTTP/1.1)"; fi
				return 0
			fi
			kill -0 "$target_pid" 2>/dev/null || break
			sleep 0.05
		done
		# A port taken between the check and the bind: try others.
		kill -QUIT "$target_pid" 2>/dev/null || true
		wait "$target_pid" 2>/dev/null || true
		target_pid=
		cat "$nginx_dir/error.log" >&2 || true
	done
	die "nginx did not start"
}

# nginx_stop: a graceful stop (the workers finish and flush the access log),
# then the counters into $work/counts: requests conns peak full resumed.
nginx_stop() {
	[ -n "$target_pid" ] || return 0
	kill -QUIT "$target_pid" 2>/dev/null || true
	wait "$target_pid" 2>/dev/null || true
	target_pid=
	cpu_pid=
	"$tally" nginx "$nginx_dir/access.log" >"$work/counts"
}
