#!/usr/bin/python3
"""Fetch every URL of a list with aiohttp, the way the seed project did.

The pattern under test: one ClientSession whose TCPConnector caps the
connections in total (limit) and per host (limit_per_host), one task per URL
gathered at once, and a per-domain asyncio.Semaphore around each request.
The list is read whole into memory, as the seed did.

Prints one line, "answered distinct ok": the responses read, the distinct
URLs among them, and those with a 2xx status. Failures are counted on
stderr. Used by scripts/bench.sh, and with --proxy by scripts/bench/proxy.sh;
it needs Debian's python3-aiohttp.
"""

import argparse
import asyncio
import ssl
import sys
from urllib.parse import urlsplit

import aiohttp


def read_urls(path):
    urls = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                urls.append(line)
    return urls


async def fetch_all(urls, limit, per_host, timeout, cacert, proxy):
    answered = {}
    ok = 0
    failed = 0
    semaphores = {}

    extra = {"ssl": ssl.create_default_context(cafile=cacert)} if cacert else {}
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=per_host, **extra)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def fetch(url):
            nonlocal ok, failed
            domain = urlsplit(url).netloc.lower()
            sem = semaphores.get(domain)
            if sem is None:
                sem = semaphores[domain] = asyncio.Semaphore(per_host)
            async with sem:
                try:
                    async with session.get(url, proxy=proxy) as resp:
                        await resp.read()
                        answered[url] = answered.get(url, 0) + 1
                        if 200 <= resp.status <= 299:
                            ok += 1
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    failed += 1

        await asyncio.gather(*(fetch(u) for u in urls))
    return sum(answered.values()), len(answered), ok, failed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("list", help="file with one URL a line")
    p.add_argument("--limit", type=int, default=100, help="connections in total")
    p.add_argument("--per-host", type=int, default=20, help="connections and requests per host")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument("--cacert", help="PEM file of the certificate to trust over TLS")
    p.add_argument("--proxy", help="http://host:port of a proxy for every request: plain-http "
                   "URLs are forwarded by it, https URLs go through CONNECT")
    a = p.parse_args()
    urls = read_urls(a.list)
    answered, distinct, ok, failed = asyncio.run(
        fetch_all(urls, a.limit, a.per_host, a.timeout, a.cacert, a.proxy))
    if failed:
        print(f"aiohttp_fetch: {failed} requests failed", file=sys.stderr)
    print(answered, distinct, ok)


if __name__ == "__main__":
    main()
