"""Run the benchmark modules and print their measurements as one table."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import Measurement

PACKAGE_DIR = Path(__file__).resolve().parent


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
    table = Table(title="Benchmarks (wall clock)")
    for column in ("benchmark", "case", "runs", "median ms", "p95 ms", "note"):
        justify = "right" if column in ("runs", "median ms", "p95 ms") else "left"
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for item in measurements:
        table.add_row(
            item.benchmark,
            item.case,
            str(item.runs),
            f"{item.median_ms:.2f}",
            f"{item.p95_ms:.2f}",
            item.note,
        )
    return table


def main(argv: Sequence[str]) -> int:
    available = module_names()
    selected = list(argv) or available
    unknown = sorted(set(selected) - set(available))
    if unknown:
        print(f"unknown benchmark modules {unknown}; available: {available}", file=sys.stderr)
        return 2
    Console(width=160).print(render(run_modules(selected)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
