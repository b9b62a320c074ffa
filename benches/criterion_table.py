#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench` run from target/criterion as a table: ns per
element and each bench's ratio to the same group's `baseline` (the physical limit measured in
the same run). Usage: python3 benches/criterion_table.py [GROUP_PREFIX]"""
import json, pathlib, sys

root = pathlib.Path("target/criterion")
prefix = sys.argv[1] if len(sys.argv) > 1 else ""
rows = {}
for est in sorted(root.glob("*/*/new/estimates.json")) + sorted(root.glob("*/*/*/new/estimates.json")):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    group, fn = bench["group_id"], bench.get("function_id") or bench.get("value_str")
    if not group.startswith(prefix):
        continue
    median_ns = json.loads(est.read_text())["median"]["point_estimate"]
    elements = (bench.get("throughput") or {}).get("Elements", 1)
    rows.setdefault(group, {})[fn] = median_ns / elements
for group, fns in sorted(rows.items()):
    base = fns.get("baseline")
    print(f"\n{group}")
    for fn, ns in sorted(fns.items(), key=lambda kv: kv[1]):
        ratio = f"{ns / base:6.1f}x baseline" if base else ""
        print(f"  {fn:14} {ns:10.1f} ns/elem  {ratio}")
