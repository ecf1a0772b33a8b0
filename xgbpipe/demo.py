"""`make demo`: the seed's whole flow on the local cloud, from a CSV drop to predictions.

Starts the local cloud if it is not running (with a gate of RMSE 3.0: abalone's mean predictor
scores about 3.2), prepares examples/abalone.csv, drops the three files into the bucket, follows
the run through its record in the Runs table, then asks the live model for a few predictions.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from xgbpipe.client import (
    Stack,
    describe_metrics,
    find_stack,
    model_item,
    predict,
    run_of_drop,
    upload,
    watch,
)
from xgbpipe.local import control
from xgbpipe.prepare import PreparedData, prepare

MODEL = "abalone"
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "abalone.csv"
DEMO_PARAMETERS = {"GateThreshold": "3.0"}
RUN_TIMEOUT_SECONDS = 300.0
PREDICTION_ROWS = 5


class DemoError(RuntimeError):
    """The demo's run did not end in a live model; the message says what happened."""


def test_rows(test_csv: Path) -> tuple[list[list[float]], list[float]]:
    """Features and true labels of the test set (it keeps its label in column 0)."""
    with test_csv.open() as lines:
        rows = [[float(value) for value in row] for row in csv.reader(lines)]
    return [row[1:] for row in rows], [row[0] for row in rows]


def run_demo(console: Console, template: Path, state_dir: Path) -> None:
    started_at = time.monotonic()
    console.rule("[bold]xgbpipe demo: the whole stack on this machine")
    console.print("Starting the local cloud (moto, local SageMaker, functions, API)...")
    started = control.start(template, state_dir, parameter_overrides=DEMO_PARAMETERS)
    state = started.state
    if started.already_running:
        console.print("  already running; using it as it is")
        if state.parameter_overrides != DEMO_PARAMETERS:
            console.print(
                f"  [yellow]note:[/yellow] it runs with {state.parameter_overrides or 'defaults'}, "
                f"not the demo's {DEMO_PARAMETERS}; `make down` first for the demo's gate"
            )
    stack = find_stack(None, local=True, state_dir=state_dir)
    with tempfile.TemporaryDirectory(prefix="xgbpipe-demo-") as work_dir:
        show_run(console, stack, prepare(SAMPLE, Path(work_dir)))
    console.print(f"Demo finished in {time.monotonic() - started_at:.0f}s.")


def show_run(console: Console, stack: Stack, prepared: PreparedData) -> None:
    """Drop the prepared files, follow their run, and score the test set on the live model."""
    console.print(f"Prepared {SAMPLE.name} like the seed: sex one-hot, label first, 70/30 splits.")
    drop = upload(stack, MODEL, prepared.upload_files())
    console.print(f"Dropped train/validation/test.csv into s3://{stack.bucket}/datasets/{MODEL}/")
    run = run_of_drop(stack, MODEL, drop)
    if run.get("stage") == "done":
        console.print("  (same data as before: the stack recognised the run and did nothing new)")

    console.print("Following the run (S3 -> training -> batch transform -> gate -> endpoint):")

    def show(state: dict[str, Any]) -> None:
        console.print(
            f"  run {state['run_id']}: stage [bold]{state.get('stage')}[/bold], "
            f"{state.get('status')}"
        )

    run = watch(stack, MODEL, str(run["run_id"]), show, RUN_TIMEOUT_SECONDS)
    console.print(
        f"Test-set metrics (batch transform): {describe_metrics(run.get('metrics'))} "
        f"on {(run.get('metrics') or {}).get('rows', '?')} rows"
    )
    console.print(f"Gate: {(run.get('gate') or {}).get('reason', 'not reached')}")
    console.print(f"Decision: [bold]{run.get('status')}[/bold] ({run.get('reason') or ''})")
    live = (model_item(stack, MODEL) or {}).get("live") or {}
    if live.get("run_id") != run["run_id"]:
        raise DemoError(f"the run is not live: {run.get('status')} {run.get('reason')}")

    rows, truth = test_rows(prepared.test)
    predictions = [float(p) for p in predict(stack, MODEL, rows)]
    table = Table(title=f"POST /models/{MODEL}/predictions (version {live['run_id']})")
    table.add_column("rings (true)", justify="right")
    table.add_column("prediction", justify="right")
    for actual, predicted in zip(truth[:PREDICTION_ROWS], predictions, strict=False):
        table.add_row(f"{actual:g}", f"{predicted:.2f}")
    console.print(table)
    # The seed's last check: the endpoint scores the test set exactly as the batch transform did.
    endpoint_rmse = math.sqrt(
        sum((p - t) ** 2 for p, t in zip(predictions, truth, strict=True)) / len(truth)
    )
    console.print(
        f"RMSE of the endpoint over all {len(truth)} test rows: {endpoint_rmse:.4f} "
        f"(batch transform: {(run.get('metrics') or {}).get('rmse', float('nan')):.4f})"
    )

    body = json.dumps({"instances": rows[:1]})
    console.print("Call it by hand:")
    console.print(
        f"  curl -s -X POST {stack.api_url}/models/{MODEL}/predictions \\\n"
        f"    -H 'x-api-key: {stack.api_key}' "
        f"-H 'Content-Type: application/json' \\\n    -d '{body}'",
        soft_wrap=True,
    )
    console.print(f"  .venv/bin/xgbpipe status {MODEL}; .venv/bin/xgbpipe report {run['run_id']}")
    console.print(
        '  eval "$(.venv/bin/xgbpipe local env)"   # then: aws s3 ls s3://' + stack.bucket
    )
    console.print("Stop the local cloud: make down")
