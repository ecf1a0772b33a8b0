"""The deploy function's streaming evaluator vs pandas.read_csv + scikit-learn on the same file.

Each file is a batch transform's joined output (label, 8 abalone-like features, prediction), on
local disk and fed to `evaluate_joined_output` line by line as bytes, as `storage.iter_lines`
feeds it from S3, so the figure is the evaluator's own cost. Every run of either method is a child
process of its own: its peak RSS is its own, interpreter and imports included (pandas and
scikit-learn take their share). Timings cover the evaluation only, not starting the child. Both
methods must agree on every metric to 1e-9, relative or absolute (`math.isclose`), or the module
raises, except AUC past `EXACT_AUC_SCORES` distinct scores, which must be within the
`auc_error_bound` the evaluator reports. The binary cases: probabilities to 6 digits (many ties),
then every score distinct (12 digits), over 1M and 4M rows, whose peak memory should be the same.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from benchmarks import Measurement, measure, run_child

NAME = "evaluation"
ROWS = tuple(
    int(size) for size in os.environ.get("BENCH_EVALUATION_ROWS", "1000000,10000000").split(",")
)
BINARY_ROWS = int(os.environ.get("BENCH_EVALUATION_BINARY_ROWS", "1000000"))  # 0 skips it
# Binary outputs whose scores are all distinct: AUC in bounded memory ("" skips them).
DISTINCT_ROWS = tuple(
    int(size)
    for size in os.environ.get("BENCH_EVALUATION_DISTINCT_ROWS", "1000000,4000000").split(",")
    if size
)
RUNS = int(os.environ.get("BENCH_EVALUATION_RUNS", "3"))
# One streaming pass takes about 25 s over 10M rows and 6 s over 1M binary rows on a 2-core
# machine: regression files above LARGE_ROWS and the binary file run LARGE_RUNS times (fewer to
# shorten `make bench`).
LARGE_ROWS = 1_000_000
LARGE_RUNS = int(os.environ.get("BENCH_EVALUATION_LARGE_RUNS", "3"))
FEATURES = 8
INPUT_WIDTH = FEATURES + 1  # the label and the features, before the prediction
TOLERANCE = 1e-9
CHUNK_ROWS = 500_000
SEED = 20240611
# Each column's values as (first code, last code + 1, scale, format): value = code / scale.
AGES = (1_000, 30_000, 1_000, ".6g")  # labels like abalone rings, with three decimals
ESTIMATES = (-100_000, 450_000, 10_000, ".6g")  # predicted ages, to within about two years
CLASSES = (0, 2, 1, ".0f")
PROBABILITIES = (1, 1_000_000, 1_000_000, ".6g")
# A distinct probability's text: its first 6 decimals, then 6 more at random.
LEADING_DIGITS = (0, 1_000_000, 1_000_000, ".6f")
TRAILING_DIGITS = (0, 1_000_000, 1, "06.0f")
MEASURES = (1, 10_000, 10_000, ".4g")  # features in (0, 1), as abalone's lengths and weights

STREAM_CHILD = """
import json, sys, time
from pipeline_common.metrics import evaluate_joined_output
from pipeline_common.problem import ProblemType

path, problem, width = sys.argv[1], ProblemType(sys.argv[2]), int(sys.argv[3])
objective = sys.argv[4] or None
start = time.perf_counter()
with open(path, "rb") as lines:
    metrics = evaluate_joined_output(lines, problem, width, objective=objective)
print(json.dumps({"seconds": time.perf_counter() - start, "metrics": metrics}))
"""

PANDAS_CHILD = """
import json, math, sys, time
import pandas as pd
from sklearn import metrics as sk

path, problem = sys.argv[1], sys.argv[2]
start = time.perf_counter()
table = pd.read_csv(path, header=None)
label, prediction = table.iloc[:, 0].to_numpy(), table.iloc[:, -1].to_numpy()
if problem == "regression":
    metrics = {
        "rmse": math.sqrt(sk.mean_squared_error(label, prediction)),
        "mae": sk.mean_absolute_error(label, prediction),
        "r2": sk.r2_score(label, prediction),
    }
else:
    metrics = {
        "auc": sk.roc_auc_score(label, prediction),
        "accuracy": sk.accuracy_score(label.astype(int), (prediction > 0.5).astype(int)),
        "logloss": sk.log_loss(label, prediction),
    }
metrics["rows"] = len(table)
print(json.dumps({"seconds": time.perf_counter() - start, "metrics": metrics}))
"""


@functools.cache
def _texts(start: int, stop: int, scale: int, spec: str) -> np.ndarray:
    """The text of code / scale for each code in [start, stop), NUL-padded to one width."""
    return np.array([format(code / scale, spec).encode() for code in range(start, stop)])


def _column(codes: np.ndarray, values: tuple[int, int, int, str]) -> np.ndarray:
    """The texts of `codes`: indexing a table formatted once, not formatting every number."""
    start, stop = values[0], values[1]
    return _texts(*values)[np.clip(codes, start, stop - 1) - start]


def _write_rows(out: BinaryIO, columns: Sequence[np.ndarray]) -> None:
    """Write CSV rows from one byte-string array per column, dropping their NUL padding."""
    rows = len(columns[0])
    comma = np.full((rows, 1), ord(","), np.uint8)
    parts: list[np.ndarray] = []
    for column in columns:
        parts += [column.view(np.uint8).reshape(rows, -1), comma]
    parts[-1] = np.full((rows, 1), ord("\n"), np.uint8)
    text = np.concatenate(parts, axis=1).ravel()
    out.write(text[text != 0].tobytes())


def _write_output(path: Path, problem: str, rows: int, distinct: bool = False) -> None:
    """A joined output file: label, features, prediction, as a transform job writes them;
    `distinct`: binary scores with 12 decimals, nearly all of them distinct."""
    rng = np.random.default_rng(SEED)
    with path.open("wb") as out:
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            if problem == "regression":
                age = np.clip(
                    np.rint(rng.normal(10, 3, count) * 1_000).astype(np.int64), 1_000, 29_999
                )
                label = _column(age, AGES)
                estimate = np.rint((age / 1_000 + rng.normal(0, 2, count)) * 10_000)
                prediction = _column(estimate.astype(np.int64), ESTIMATES)
            else:
                positive = rng.random(count) < 0.3
                label = _column(positive.astype(np.int64), CLASSES)
                margin = np.where(positive, 1.0, -1.0) + rng.normal(0, 1.5, count)
                if distinct:
                    leading = np.floor(1_000_000 / (1 + np.exp(-margin))).astype(np.int64)
                    trailing = rng.integers(0, 1_000_000, count)
                    prediction = np.char.add(
                        _column(leading, LEADING_DIGITS), _column(trailing, TRAILING_DIGITS)
                    )
                else:
                    probability = np.rint(1_000_000 / (1 + np.exp(-margin)))
                    prediction = _column(probability.astype(np.int64), PROBABILITIES)
            features = _column(rng.integers(MEASURES[0], MEASURES[1], (FEATURES, count)), MEASURES)
            _write_rows(out, [label, *features, prediction])


def _run(code: str, *args: str) -> tuple[float, dict[str, float], float]:
    """One child's evaluation: (its seconds, its metrics, its peak RSS in MB)."""
    output, peak_mb = run_child(code, *args)
    result = json.loads(output)
    return result["seconds"], result["metrics"], peak_mb


def _check(case: str, streamed: dict[str, float], expected: dict[str, float]) -> None:
    """Every metric within TOLERANCE of scikit-learn's; AUC, once binned, within its bound."""
    streamed = dict(streamed)
    bound = streamed.pop("auc_error_bound", 0.0)
    agree = streamed.keys() == expected.keys() and all(
        math.isclose(
            streamed[key],
            expected[key],
            rel_tol=TOLERANCE,
            abs_tol=max(TOLERANCE, bound if key == "auc" else 0.0),
        )
        for key in streamed
    )
    if not agree:
        raise RuntimeError(
            f"{case}: the streaming evaluator's metrics {streamed} differ from scikit-learn's "
            f"{expected} by more than {TOLERANCE:g} (relative or absolute; AUC's bound {bound:g})"
        )


def _compare(
    path: Path, problem: str, rows: int, runs: int, distinct: bool = False
) -> list[Measurement]:
    case = f"{rows:,} rows {problem}" + (", all scores distinct" if distinct else "")
    objective = "binary:logistic" if problem == "binary" else ""
    baseline: list[float] = []
    streamed: list[float] = []
    baseline_peaks: list[float] = []
    streamed_peaks: list[float] = []
    auc = ""
    # Alternating the two spreads any drift in the machine's load over both.
    for _ in range(runs):
        seconds, expected, peak = _run(PANDAS_CHILD, str(path), problem)
        baseline.append(seconds * 1000)
        baseline_peaks.append(peak)
        seconds, metrics, peak = _run(STREAM_CHILD, str(path), problem, str(INPUT_WIDTH), objective)
        streamed.append(seconds * 1000)
        streamed_peaks.append(peak)
        _check(case, metrics, expected)
        if metrics.get("auc_error_bound"):
            auc = (
                f"; AUC binned: off by {abs(metrics['auc'] - expected['auc']):.1e}, "
                f"bound {metrics['auc_error_bound']:.1e}"
            )
    reduced = f"; {runs} of {RUNS} runs, for the time budget" if runs < RUNS else ""
    pandas = measure(
        NAME,
        f"pandas.read_csv + scikit-learn, {case}",
        baseline,
        f"whole file in memory{reduced}",
        throughput=rows / statistics.median(baseline) * 1000,
        throughput_unit="rows/s",
        peak_mb=max(baseline_peaks),
    )
    memory = max(streamed_peaks) / max(baseline_peaks)
    stream = measure(
        NAME,
        f"streaming evaluate_joined_output, {case}",
        streamed,
        f"peak memory x{memory:.3f}; metrics equal to {TOLERANCE:g} (rel or abs){auc}{reduced}",
        baseline=pandas,
        throughput=rows / statistics.median(streamed) * 1000,
        throughput_unit="rows/s",
        peak_mb=max(streamed_peaks),
    )
    return [pandas, stream]


def run() -> list[Measurement]:
    cases = [
        ("regression", rows, RUNS if rows <= LARGE_ROWS else LARGE_RUNS, False) for rows in ROWS
    ]
    if BINARY_ROWS:
        cases.append(("binary", BINARY_ROWS, LARGE_RUNS, False))
    cases += [("binary", rows, LARGE_RUNS, True) for rows in DISTINCT_ROWS]
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory() as tmp:
        for problem, rows, runs, distinct in cases:
            path = Path(tmp) / f"{problem}-{rows}.csv.out"
            _write_output(path, problem, rows, distinct)
            measurements += _compare(path, problem, rows, runs, distinct)
            path.unlink()  # the 10M-row file is most of a gigabyte
    return measurements
