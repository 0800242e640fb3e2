#!/usr/bin/env python3
"""Reads a goose markdown report (--report-file x.md) and a GNU time file ("%U %S %e") and prints
one line for scripts/bench: aggregated requests/s, p50, p90 and p99 in ms, generator CPU cores.
With --check (scripts/bench-smoke): exits 1 unless requests were made and none failed."""
import sys


def aggregated(lines, header):
    start = next(i for i, l in enumerate(lines) if l.startswith("## " + header))
    for l in lines[start + 1:]:
        if l.startswith("## "):
            break
        cells = [c.strip() for c in l.strip().strip("|").split("|")]
        if "Aggregated" in cells[:2]:
            return cells
    raise SystemExit(f"no Aggregated row under {header}")


def main():
    check = "--check" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--check"]
    lines = open(args[0]).read().splitlines()
    req = aggregated(lines, "Request Metrics")
    rt = aggregated(lines, "Response Time Metrics")
    # Request Metrics: Method | Name | # Requests | # Fails | Avg | Min | Max | RPS | Failures/s
    rps = float(req[7].replace(",", ""))
    # Response Time Metrics: Method | Name | 50 | 60 | 70 | 80 | 90 | 95 | 99 | 100
    p50, p90, p99 = rt[2], rt[6], rt[8]
    if check:
        requests, fails = int(req[2].replace(",", "")), int(req[3].replace(",", ""))
        print(f"{requests} requests, {fails} failed, {rps:.0f}/s, p99 {p99} ms")
        sys.exit(0 if requests > 0 and fails == 0 else 1)
    user, system, elapsed = (float(x) for x in open(args[1]).read().split()[-3:])
    print(f"{rps:.0f} {p50} {p90} {p99} {(user + system) / elapsed:.2f}")


main()
