"""Benchmarks: each `bench_*.py` module exposes `run() -> list[Measurement]`.

`python -m benchmarks` (or `make bench`) runs every module and prints one table; name modules on
the command line to run only those, e.g. `python -m benchmarks bench_sagemaker`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter


@dataclass(frozen=True)
class Measurement:
    """Wall-clock timings of one case, in milliseconds."""

    benchmark: str
    case: str
    runs: int
    median_ms: float
    p95_ms: float
    note: str = ""


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with `fraction` of samples at or below it."""
    ordered = sorted(samples)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def time_calls(call: Callable[[], object], runs: int, warmup: int = 0) -> list[float]:
    """Milliseconds taken by each of `runs` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        start = perf_counter()
        call()
        samples.append((perf_counter() - start) * 1000)
    return samples


def measure(benchmark: str, case: str, samples: list[float], note: str = "") -> Measurement:
    return Measurement(
        benchmark=benchmark,
        case=case,
        runs=len(samples),
        median_ms=statistics.median(samples),
        p95_ms=percentile(samples, 0.95),
        note=note,
    )
