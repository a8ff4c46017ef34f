"""Print a pytest-benchmark JSON file as a Markdown table (median seconds and extra_info).

Usage: python scripts/profile_bench_table.py .benchmarks/.../0001_run.json
"""

from __future__ import annotations

import json
import sys


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def main(path: str) -> None:
    data = json.load(open(path, encoding="utf-8"))
    print(f"machine: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}, "
          f"{data['machine_info'].get('cpu', {}).get('count', '?')} cores; "
          f"{data['datetime']}\n")
    print("| case | median (s) | rounds | details |\n| --- | --- | --- | --- |")
    for bench in data["benchmarks"]:
        info = {k: v for k, v in bench["extra_info"].items() if k not in ("params",)}
        details = ", ".join(f"{k}={fmt(v)}" for k, v in info.items())
        print(f"| {bench['name']} | {bench['stats']['median']:.4g} | "
              f"{bench['stats']['rounds']} | {details} |")


if __name__ == "__main__":
    main(sys.argv[1])
