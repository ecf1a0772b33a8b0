"""Run the benchmark modules and print their measurements as one table."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import Measurement, machine

PACKAGE_DIR = Path(__file__).resolve().parent
RESULTS = PACKAGE_DIR.parent / ".bench" / "latest.json"


def module_names() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(PACKAGE_DIR)])
        if info.name.startswith("bench_")
    )


def run_modules(names: Sequence[str]) -> list[Measurement]:
    measurements: list[Measurement] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        measurements += module.run()
    return measurements


def render(measurements: Sequence[Measurement]) -> Table:
    table = Table(title="Benchmarks (wall clock; ratios against the baseline named, same run)")
    columns = ("benchmark", "case", "runs", "median ms", "p95 ms", "p99 ms", "per second")
    for column in (*columns, "peak MB", "ratio", "note"):
        justify = "left" if column in ("benchmark", "case", "note") else "right"
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for item in measurements:
        table.add_row(
            item.benchmark,
            item.case,
            str(item.runs),
            f"{item.median_ms:.2f}",
            f"{item.p95_ms:.2f}",
            "" if item.p99_ms is None else f"{item.p99_ms:.2f}",
            "" if item.throughput is None else f"{item.throughput:,.0f} {item.throughput_unit}",
            "" if item.peak_mb is None else f"{item.peak_mb:.0f}",
            "" if item.ratio is None else f"x{item.ratio:.2f}",
            f"{item.note} (vs {item.baseline})" if item.baseline else item.note,
        )
    return table


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("modules", nargs="*", help="bench_* modules to run; default all")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where the results go")
    args = parser.parse_args(argv)
    available = module_names()
    selected = list(args.modules) or available
    unknown = sorted(set(selected) - set(available))
    if unknown:
        print(f"unknown benchmark modules {unknown}; available: {available}", file=sys.stderr)
        return 2
    started = time.monotonic()
    measurements = run_modules(selected)
    console = Console(width=200)
    console.print(render(measurements))
    description = machine()
    console.print(
        f"Machine: {description['cpu']}, {description['cores']} cores, "
        f"{description['memory_gib']} GiB, Python {description['python']}; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": description,
                "seconds": round(time.monotonic() - started, 1),
                "measurements": [asdict(m) for m in measurements],
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
