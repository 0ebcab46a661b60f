#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench` run as Markdown tables,
each row with its ratio to the group's baseline (the plaintext or bare
aes-siv row). Used to write BENCHMARKS.md:

    python3 benches/summary.py [target/criterion]
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
BASELINES = ("plaintext, keyed SQLCipher", "plaintext", "aes-siv, cipher made per call")


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


groups = {}
for dirpath, _, files in os.walk(root):
    if "benchmark.json" in files and os.path.basename(dirpath) == "new":
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            b = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            e = json.load(f)
        groups.setdefault(b["group_id"], []).append(
            (b["function_id"] or "", b.get("value_str"), e["median"]["point_estimate"], b.get("throughput"))
        )

for g in sorted(groups):
    rows = groups[g]
    print(f"\n**{g}**\n")
    print("| way | size | median | per second | ratio |")
    print("|---|---|---|---|---|")
    by_size = {}
    for fn, size, med, thr in rows:
        by_size.setdefault(size, {})[fn] = (med, thr)
    for size in sorted(by_size, key=lambda s: (s is None, int(s) if s and s.isdigit() else 0)):
        fns = by_size[size]
        base = next((fns[b][0] for b in BASELINES if b in fns), None)
        for fn in sorted(fns, key=lambda x: (x not in BASELINES, x)):
            med, thr = fns[fn]
            rate = ""
            if thr:
                (kind, n), = thr.items()
                per = n / (med / 1e9)
                rate = f"{per / 1e6:.3g} M" if per >= 1e6 else f"{per:,.0f}"
                rate += " B/s" if kind == "Bytes" else " /s"
            ratio = f"{med / base:.2f}×" if base else ""
            print(f"| {fn} | {size or ''} | {fmt_time(med)} | {rate} | {ratio} |")
