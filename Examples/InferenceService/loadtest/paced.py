#!/usr/bin/env python3
"""Open-loop load at a fixed rate with evenly spaced arrivals (what wrk2 does), on loopback.

hey's -q limits each worker separately and all workers tick together, so "-c 5 -q 10" sends
bursts of 5 simultaneous requests every 100 ms instead of one every 20 ms; on a server with two
inference slots that queues the third to fifth request of every burst. This client starts one
request every 1/rate seconds, each on its own connection, whatever the previous ones are doing,
and reports latency from the scheduled start (so queueing inside the client is counted too).

    paced.py URL BODY_FILE --rate 50 --seconds 60 [--content-type image/jpeg]
"""
import argparse
import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlparse


async def one_request(host, port, path, body, content_type, scheduled, results):
    try:
        reader, writer = await asyncio.open_connection(host, port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
        writer.close()
        status = int(status_line.split()[1])
    except Exception:  # a refused or reset connection is an error, counted as status 0
        status = 0
    results.append((status, (time.perf_counter() - scheduled) * 1000))


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--content-type", default="image/jpeg")
    args = parser.parse_args()
    url = urlparse(args.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    body = open(args.body, "rb").read()
    results, tasks = [], []
    count = int(args.rate * args.seconds)
    start = time.perf_counter() + 0.1
    for index in range(count):
        scheduled = start + index / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(
            one_request(url.hostname, url.port, path, body, args.content_type, scheduled, results)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    ok = sorted(ms for status, ms in results if status == 200)
    shed = sorted(ms for status, ms in results if status == 503)
    other = len(results) - len(ok) - len(shed)

    def pct(values, p):
        return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 1) if values else None

    summary = {"offered_rate": args.rate, "seconds": round(elapsed, 1), "requests": len(results),
               "ok": len(ok), "shed_503": len(shed), "other": other,
               "p50_ms": pct(ok, 50), "p90_ms": pct(ok, 90), "p99_ms": pct(ok, 99), "max_ms": pct(ok, 100),
               "p99_503_ms": pct(shed, 99),
               "mean_ms": round(statistics.mean(ok), 1) if ok else None}
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
