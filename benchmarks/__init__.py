"""Benchmarks: each `bench_*.py` module exposes `run() -> list[Measurement]`.

`python -m benchmarks` (or `make bench`) runs every module, prints one table and writes JSON with
the machine's description; name modules on the command line to run only those, e.g.
`python -m benchmarks bench_sagemaker`. Every figure is the median of several runs, and every
comparison a ratio of two figures measured in the same run.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Measurement:
    """One case: wall-clock timings in milliseconds, and what else it measured."""

    benchmark: str
    case: str
    runs: int
    median_ms: float
    p95_ms: float
    p99_ms: float | None = None
    # Work per second (rows, requests), with its unit.
    throughput: float | None = None
    throughput_unit: str = ""
    peak_mb: float | None = None
    # This case's median over its baseline's, measured in the same run ("x2.5": 2.5 times slower).
    ratio: float | None = None
    baseline: str = ""
    note: str = ""


def percentile(samples: Sequence[float], fraction: float) -> float:
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


def concurrently(call: Callable[[], object], workers: int, total: int) -> tuple[list[float], float]:
    """Milliseconds of each of `total` calls made by `workers` threads at once, and calls per
    second over the whole burst (after one untimed warm-up call)."""
    latencies: list[float] = []
    lock = threading.Lock()
    share = max(1, total // workers)

    def caller() -> None:
        mine = time_calls(call, share)
        with lock:
            latencies.extend(mine)

    call()
    started = perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(caller) for _ in range(workers)]:
            future.result()
    return latencies, len(latencies) / (perf_counter() - started)


def measure(
    benchmark: str,
    case: str,
    samples: Sequence[float],
    note: str = "",
    *,
    baseline: Measurement | None = None,
    throughput: float | None = None,
    throughput_unit: str = "",
    peak_mb: float | None = None,
    with_p99: bool = False,
) -> Measurement:
    median = statistics.median(samples)
    return Measurement(
        benchmark=benchmark,
        case=case,
        runs=len(samples),
        median_ms=median,
        p95_ms=percentile(samples, 0.95),
        p99_ms=percentile(samples, 0.99) if with_p99 else None,
        throughput=throughput,
        throughput_unit=throughput_unit,
        peak_mb=peak_mb,
        ratio=median / baseline.median_ms if baseline and baseline.median_ms else None,
        baseline=baseline.case if baseline else "",
        note=note,
    )


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


_PEAK = "__peak_rss_kib__"
# The child's own high-water mark: its ru_maxrss would still count the parent it was forked from.
_FOOTER = f"""
for _line in open("/proc/self/status"):
    if _line.startswith("VmHWM:"):
        print({_PEAK!r}, _line.split()[1])
"""


def run_child(code: str, *args: str, timeout: float = 600) -> tuple[str, float]:
    """Run `python -c code args` with the project importable: (its stdout, its peak RSS in MB).

    Each case in a child of its own gets a clean peak-memory reading, printed as its last line.
    """
    footer = _FOOTER
    completed = subprocess.run(
        [sys.executable, "-c", code + footer, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'pipeline_common'}"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {completed.stderr.strip()[-2000:]}")
    output, _, peak = completed.stdout.rpartition(_PEAK)
    return output, int(peak.strip()) / 1024  # KiB on Linux
