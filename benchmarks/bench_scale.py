"""A generated 1 GB drop in gzip parts through the whole local chain.

The drop holds 1 GiB of CSV (a regression on ten features) as gzip parts: train 16 parts,
validation 2, test 2, each folder closed by `_SUCCESS`, asking for two training and two
transform instances. Formatting a gigabyte of numbers in Python takes minutes, so a part is
made of four generated 8 MB blocks in turn, each compressed once (a part is then a valid
multi-member gzip file). Measured: the time from the first upload to the deployed model, each
stage's share, and every function's peak memory, read off the REPORT lines the local Lambda
runtime writes as Lambda does (`Max Memory Used`: the process's peak RSS, runtime included).
Set BENCH_SCALE_MB to change the size.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import Measurement, measure
from benchmarks.bench_chain import STAGES, local_cloud
from xgbpipe import client

NAME = "scale (local cloud)"
MODEL = "scale"
SIZE_MB = int(os.environ.get("BENCH_SCALE_MB", "1024"))
PARTS = {"train": 16, "validation": 2, "test": 2}
SHARE = {"train": 0.8, "validation": 0.1, "test": 0.1}
FEATURES = 10
BLOCK_ROWS = 120_000  # about 8 MB of CSV
_REPORT = re.compile(r"Duration: ([\d.]+) ms.*?Max Memory Used: (\d+) MB")


def part_text(rows: int, seed: int) -> bytes:
    """Rows of label,feature,...: the label a noisy linear function of the features."""
    generator = np.random.default_rng(seed)
    features = generator.random((rows, FEATURES)).round(4)
    label = features @ np.linspace(1, 2, FEATURES) + generator.normal(0, 0.1, rows)
    table = np.column_stack([label.round(4), features])
    lines = [",".join(f"{value:.4f}" for value in row) for row in table.tolist()]
    return ("\n".join(lines) + "\n").encode()


def upload_drop(stack: client.Stack) -> tuple[int, int]:
    """Upload the parts, then the markers; returns (plain bytes, compressed bytes)."""
    s3 = stack.client("s3")
    blocks = [part_text(BLOCK_ROWS, seed) for seed in range(4)]
    packed = [gzip.compress(block, compresslevel=1) for block in blocks]
    plain = compressed = 0
    settings = {
        "hyperparameters.json": {"num_round": "10", "max_depth": "6", "eta": "0.3"},
        "pipeline.json": {
            "gate": {"rmse": 1.0},
            "training_instance_count": 2,
            "transform_instance_count": 2,
        },
    }
    for name, document in settings.items():
        s3.put_object(
            Bucket=stack.bucket, Key=f"datasets/{MODEL}/{name}", Body=json.dumps(document)
        )
    for channel, count in PARTS.items():
        per_part = max(1, round(SIZE_MB * 2**20 * SHARE[channel] / count / len(blocks[0])))
        for index in range(count):
            chosen = [(index + i) % len(blocks) for i in range(per_part)]
            body = b"".join(packed[i] for i in chosen)
            plain += sum(len(blocks[i]) for i in chosen)
            compressed += len(body)
            key = f"datasets/{MODEL}/{channel}/part-{index:05d}.csv.gz"
            s3.put_object(Bucket=stack.bucket, Key=key, Body=body)
    for channel in PARTS:
        s3.put_object(Bucket=stack.bucket, Key=f"datasets/{MODEL}/{channel}/_SUCCESS", Body=b"")
    return plain, compressed


def stage_times(stack: client.Stack, started: float) -> dict[str, float]:
    """Seconds in each stage of the model's run, polled every 0.2 s until it is done."""
    entered: dict[str, float] = {}
    while True:
        latest = (client.model_item(stack, MODEL) or {}).get("latest_run_id")
        run = client.find_run(stack, str(latest), MODEL) if latest else {}
        entered.setdefault(str(run.get("stage", "waiting")), time.perf_counter())
        if run.get("stage") == "done":
            if run.get("status") != "deployed":
                raise RuntimeError(f"scale run ended {run.get('status')}: {run.get('reason')}")
            break
        time.sleep(0.2)
    marks = sorted(entered.items(), key=lambda item: item[1])
    spans = {stage: 0.0 for stage in STAGES}
    for (stage, at), (_, until) in itertools.pairwise(marks):
        if stage in spans:
            spans[stage] += until - at
    spans["total"] = marks[-1][1] - started
    return spans


def function_reports(log_dir: Path) -> dict[str, tuple[float, int]]:
    """Every function's longest invocation (ms) and highest `Max Memory Used` (MB), from its log."""
    reports = {}
    for log in sorted(log_dir.glob("*.log")):
        found = _REPORT.findall(log.read_text(errors="replace"))
        if found:
            reports[log.stem] = (
                max(float(duration) for duration, _ in found),
                max(int(peak) for _, peak in found),
            )
    return reports


def run() -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work_dir = Path(tmp)
        with local_cloud(work_dir) as cloud:
            stack = client.local_stack(cloud.environment())
            started = time.perf_counter()
            plain, compressed = upload_drop(stack)
            uploaded = time.perf_counter() - started
            spans = stage_times(stack, started)
        # After the cloud stops: a function writes its REPORT line after its handler returns.
        reports = function_reports(work_dir / "state" / "logs")
    size = f"{plain / 2**30:.2f} GiB of CSV as {compressed / 2**30:.2f} GiB of gzip parts"
    measurements = [
        measure(
            NAME,
            "1 GB drop in parts -> deployed",
            [spans["total"] * 1000],
            f"{size}; 2 training and 2 transform instances; upload took {uploaded:.0f} s",
            throughput=plain / 2**20 / spans["total"],
            throughput_unit="MB/s",
        )
    ]
    for stage in STAGES:
        measurements.append(
            measure(NAME, f"  stage: {stage}", [spans[stage] * 1000], "after the last marker")
        )
    for function, (longest_ms, peak) in reports.items():
        measurements.append(
            Measurement(
                NAME,
                f"  function: {function}",
                1,
                longest_ms,
                longest_ms,
                peak_mb=peak,
                note="its longest invocation; Max Memory Used (target: under 256 MB)",
            )
        )
    return measurements
