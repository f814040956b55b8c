#!/usr/bin/python3
"""Fetch every URL of a list with aiohttp through one proxy, as the seed did.

The pattern of aiohttp_fetch.py (one ClientSession whose TCPConnector caps
connections in total and per host, one task per URL, a per-domain
asyncio.Semaphore), with proxy= on every request: plain-http URLs are
forwarded by the proxy, https URLs go through CONNECT.

Prints one line, "answered distinct ok", as aiohttp_fetch.py does. Used by
scripts/bench/proxy.sh; it needs Debian's python3-aiohttp.
"""

import argparse
import asyncio
import ssl
import sys
from urllib.parse import urlsplit

import aiohttp

from aiohttp_fetch import read_urls


async def fetch_all(urls, proxy, cafile, limit, per_host, timeout):
    answered = {}
    ok = 0
    failed = 0
    semaphores = {}
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None

    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=per_host, ssl=ctx)
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
    p.add_argument("--proxy", required=True, help="http://host:port of the proxy")
    p.add_argument("--cacert", help="PEM file of the certificates to trust for https URLs")
    p.add_argument("--limit", type=int, default=100, help="connections in total")
    p.add_argument("--per-host", type=int, default=20, help="connections and requests per host")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    a = p.parse_args()
    urls = read_urls(a.list)
    answered, distinct, ok, failed = asyncio.run(
        fetch_all(urls, a.proxy, a.cacert, a.limit, a.per_host, a.timeout))
    if failed:
        print(f"aiohttp_proxy: {failed} requests failed", file=sys.stderr)
    print(answered, distinct, ok)


if __name__ == "__main__":
    main()
