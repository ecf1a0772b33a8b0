"""`make demo`: the seed's whole flow on the local cloud, from a CSV drop to predictions.

Starts the local cloud if it is not running (with a gate of RMSE 3.0: abalone's mean predictor
scores about 3.2), prepares examples/abalone.csv, drops the three files into the bucket, follows
the run through GET /models/abalone, then asks the live model for a few predictions.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.table import Table

from xgbpipe.local import control
from xgbpipe.local.state import CloudState
from xgbpipe.prepare import PreparedData, prepare

MODEL = "abalone"
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "abalone.csv"
DEMO_PARAMETERS = {"GateThreshold": "3.0"}
RUN_TIMEOUT_SECONDS = 300.0
PREDICTION_ROWS = 5


class DemoError(RuntimeError):
    """The demo's run did not end in a live model; the message says what happened."""


class ModelApi:
    """The stack's prediction API: GET /models/{model}, POST /models/{model}/predictions."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self.api_url = api_url
        self.api_key = api_key

    def describe(self, model: str) -> dict[str, Any] | None:
        status, body = self._call("GET", f"/models/{model}")
        if status == 404:
            return None
        if status != 200:
            raise DemoError(f"GET /models/{model} answered {status}: {body}")
        return body

    def predict(self, model: str, rows: list[list[float]]) -> dict[str, Any]:
        status, body = self._call("POST", f"/models/{model}/predictions", {"instances": rows})
        if status != 200:
            raise DemoError(f"POST /models/{model}/predictions answered {status}: {body}")
        return body

    def _call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 - the API URL is http(s) by construction
            f"{self.api_url}{path}",
            method=method,
            data=None if payload is None else json.dumps(payload).encode(),
            headers={"x-api-key": self.api_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def upload_dataset(state: CloudState, model: str, files: dict[str, Path]) -> None:
    environment = state.environment
    s3 = boto3.client(
        "s3",
        endpoint_url=environment["AWS_ENDPOINT_URL"],
        region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
    )
    for name, path in files.items():
        s3.upload_file(str(path), environment["XGBPIPE_BUCKET"], f"datasets/{model}/{name}")


def follow_run(
    console: Console, api: ModelApi, model: str, timeout: float = RUN_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Poll the model until its latest run is done (and live, if it was deployed)."""
    deadline = time.monotonic() + timeout
    shown = None
    while time.monotonic() < deadline:
        description = api.describe(model)
        run = (description or {}).get("latest_run") or {}
        progress = (run.get("stage"), run.get("status"))
        if run and progress != shown:
            shown = progress
            console.print(
                f"  run {run.get('run_id')}: stage [bold]{progress[0]}[/bold], {progress[1]}"
            )
        if run.get("stage") == "done":
            live = (description or {}).get("live") or {}
            if run.get("status") != "deployed" or live.get("version") == run.get("run_id"):
                return description or {}
        time.sleep(0.5)
    raise DemoError(f"the run did not finish within {timeout:.0f}s; see .local-cloud/logs/")


def test_rows(test_csv: Path) -> tuple[list[list[float]], list[float]]:
    """Features and true labels of the test set (it keeps its label in column 0)."""
    with test_csv.open() as lines:
        rows = [[float(value) for value in row] for row in csv.reader(lines)]
    return [row[1:] for row in rows], [row[0] for row in rows]


def describe_metrics(metrics: dict[str, Any]) -> str:
    shown = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items() if name != "rows")
    return f"{shown} on {metrics.get('rows', '?')} rows" if shown else "none"


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
    api = ModelApi(state.api_url, state.environment["XGBPIPE_API_KEY"])

    with tempfile.TemporaryDirectory(prefix="xgbpipe-demo-") as work_dir:
        show_run(console, state, api, prepare(SAMPLE, Path(work_dir)))
    console.print(f"Demo finished in {time.monotonic() - started_at:.0f}s.")


def show_run(console: Console, state: CloudState, api: ModelApi, prepared: PreparedData) -> None:
    """Drop the prepared files, follow their run, and score the test set on the live model."""
    console.print(f"Prepared {SAMPLE.name} like the seed: sex encoded, label first, 70/30 splits.")
    previous = api.describe(MODEL)
    previous_run = ((previous or {}).get("latest_run") or {}).get("run_id")
    upload_dataset(state, MODEL, prepared.files())
    bucket = state.environment["XGBPIPE_BUCKET"]
    console.print(f"Dropped train/validation/test.csv into s3://{bucket}/datasets/{MODEL}/")

    console.print("Following the run (S3 -> training -> batch transform -> gate -> endpoint):")
    description = follow_run(console, api, MODEL)
    run = description["latest_run"]
    if run.get("run_id") == previous_run:
        console.print("  (same data as before: the stack recognised the run and did nothing new)")
    console.print(
        f"Test-set metrics (batch transform): {describe_metrics(run.get('metrics') or {})}"
    )
    console.print(f"Gate: {(run.get('gate') or {}).get('reason', 'not reached')}")
    console.print(f"Decision: [bold]{run.get('status')}[/bold] ({run.get('reason') or ''})")
    live = description.get("live")
    if not live:
        raise DemoError(f"no live model after the run: {run.get('status')} {run.get('reason')}")

    rows, truth = test_rows(prepared.test)
    result = api.predict(MODEL, rows)
    predictions = [float(p) for p in result["predictions"]]
    table = Table(title=f"POST /models/{MODEL}/predictions (version {result.get('version')})")
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
        f"  curl -s -X POST {state.api_url}/models/{MODEL}/predictions \\\n"
        f"    -H 'x-api-key: {state.environment['XGBPIPE_API_KEY']}' "
        f"-H 'Content-Type: application/json' \\\n    -d '{body}'",
        soft_wrap=True,
    )
    console.print('  eval "$(.venv/bin/xgbpipe local env)"   # then: aws s3 ls s3://' + bucket)
    console.print("Stop the local cloud: make down")
