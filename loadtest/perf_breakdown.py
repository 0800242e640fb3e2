#!/usr/bin/env python3
"""Where a gateway's CPU goes, by part, from `perf script -F ip,sym` output of a profile
recorded with call stacks (`perf record --call-graph dwarf`).

Each sample is given to the part of the innermost frame of its stack that names one (a
flow's template runs inside the flow, which runs inside the actor, inside the HTTP front):
so "HTTP front" is what hyper, the form and the sockets cost around the rest. Prints one
line per part with its share of the samples, largest first; with `--leaves N`, then the N
functions most often on top of the stack (self time).

    perf script -i perf.data -F ip,sym | python3 loadtest/perf_breakdown.py --leaves 10
"""

import sys

# (part, any of these in a frame's name). A sample goes to the part of the innermost frame that
# names one (a template runs inside the flow, inside the actor, inside the HTTP front); frames
# of serde's generated code and of drops name none (the state's JSON is written by the
# write-behind, whatever type it is). The runtime and sled's own threads only when nothing
# else matched.
PARTS = [
    ("flow: record loads", ["Records::get", "load_record", "SharedRecords::load"]),
    ("flow: templates", ["minijinja::", "flow::template::"]),
    ("flow: the rest", ["FlowApp", "ussd_gateway::flow::", "ussd_gateway::app::"]),
    ("state writes (write-behind, sled)", ["store::write_behind", "store::pending"]),
    ("end records", ["persist_end", "store::dialogues::<impl ussd_gateway::store::Store>::end"]),
    ("store: live states and tombstones, read or written at once", ["store::dialogues::"]),
    ("store, other", ["ussd_gateway::store::"]),
    ("dialogue actor", ["SessionActor", "session::actor"]),
    ("registry", ["session::registry::"]),
    ("SMPP front", ["front::smpp::", "rusmpp::"]),
    ("HTTP front (hyper, forms, sockets)", ["hyper::", "front::http::", "gateway::public::"]),
    ("metrics", ["metrics::", "metrics_exporter"]),
]
# Frames that name no part.
NEUTRAL = ["serde_core::", "drop_in_place", "serde::"]
FALLBACK = [
    ("runtime (tokio, actix scheduling)", ["tokio::", "actix::", "actix_rt::"]),
    ("sled's own threads (its log to disk)", ["sled::"]),
]


def samples(lines):
    stack = []
    for line in lines:
        line = line.strip()
        if not line:
            if stack:
                yield stack
                stack = []
            continue
        parts = line.split(None, 1)
        stack.append(parts[1] if len(parts) > 1 else "")
    if stack:
        yield stack


def part_of(stack):
    for frame in stack:
        if any(n in frame for n in NEUTRAL):
            continue
        for name, needles in PARTS:
            if any(n in frame for n in needles):
                return name
    for name, needles in FALLBACK:
        if any(n in frame for frame in stack for n in needles):
            return name
    return "other"


def main():
    leaves_wanted = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--leaves" else 0
    counts = {}
    leaves = {}
    total = 0
    for stack in samples(sys.stdin):
        total += 1
        p = part_of(stack)
        counts[p] = counts.get(p, 0) + 1
        leaf = stack[0].removesuffix(" (inlined)")
        leaves[leaf] = leaves.get(leaf, 0) + 1
    if total == 0:
        print("no samples (perf recorded nothing, or perf script failed)")
        return 0
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{100 * n / total:5.1f}%  {name}")
    print(f"({total} samples)")
    if leaves_wanted:
        print("self time, top functions:")
        for name, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:leaves_wanted]:
            print(f"{100 * n / total:5.1f}%  {name[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
