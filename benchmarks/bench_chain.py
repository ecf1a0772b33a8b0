"""The whole chain on the local cloud, and the predict path through it.

1. From the upload of abalone's three files to the first successful prediction from the predict
   URL, with each stage's share, read off the run's record (polled every 20 ms).
2. The predict path: local API -> predict function -> runtime, at concurrency 1, 8 and 32,
   against InvokeEndpoint on the runtime alone.
3. Where a prediction's time goes inside the predict function: cProfile over in-process calls of
   the real handler, pointed at the same local cloud.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import ROOT, Measurement, concurrently, measure, run_child
from xgbpipe import client
from xgbpipe.local.cloud import LocalCloud, Ports
from xgbpipe.local.runner import DUMMY_CREDENTIALS, function_environment
from xgbpipe.prepare import prepare

NAME = "chain (local cloud)"
PREDICT = "predict path"
ABALONE = ROOT / "examples" / "abalone.csv"
E2E_RUNS = int(os.environ.get("BENCH_E2E_RUNS", "3"))
PREDICT_REQUESTS = int(os.environ.get("BENCH_PREDICT_REQUESTS", "320"))
CONCURRENCY = (1, 8, 32)
PROFILE_CALLS = int(os.environ.get("BENCH_PROFILE_CALLS", "200"))
STAGES = ("validating", "training", "transforming", "evaluating", "deploying")


@contextmanager
def local_cloud(work_dir: Path) -> Iterator[LocalCloud]:
    saved = {name: os.environ.get(name) for name in DUMMY_CREDENTIALS}
    os.environ.update(DUMMY_CREDENTIALS)
    cloud = LocalCloud(
        ROOT / "template.yaml",
        work_dir / "state",
        ports=Ports(0, 0, 0, 0),
        parameter_overrides={"GateThreshold": "3.0"},
    )
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def one_run(
    stack: client.Stack, model: str, files: dict[str, Path], row: list[float]
) -> dict[str, float]:
    """Seconds from the first byte uploaded to the first prediction, and in each stage."""
    started = time.perf_counter()
    drop = client.upload(stack, model, files)
    entered = {"validating": started}
    run_id = str(client.run_of_drop(stack, model, drop, interval=0.02)["run_id"])
    while True:
        run = client.find_run(stack, run_id, model)
        entered.setdefault(str(run["stage"]), time.perf_counter())
        if client.is_finished(run):
            break
        if run.get("stage") == "done":
            raise RuntimeError(f"benchmark run ended {run.get('status')}: {run.get('reason')}")
        time.sleep(0.02)
    entered["done"] = time.perf_counter()
    while True:
        try:
            stack.api.predict(model, [row])
            break
        except client.StackError:
            time.sleep(0.02)
    finished = time.perf_counter()
    marks = sorted(entered.items(), key=lambda item: item[1])
    spans = {stage: 0.0 for stage in STAGES}
    for (stage, at), (_, until) in itertools.pairwise(marks):
        if stage in spans:
            spans[stage] += until - at
    spans["first prediction"] = finished - entered["done"]
    spans["total"] = finished - started
    return spans


def end_to_end(
    stack: client.Stack, prepared_files: dict[str, Path], row: list[float]
) -> list[Measurement]:
    runs = [one_run(stack, f"bench-{i}", prepared_files, row) for i in range(E2E_RUNS)]
    total = measure(
        NAME,
        "upload of abalone -> first prediction",
        [r["total"] * 1000 for r in runs],
        "3 CSVs dropped, training, transform, gate, endpoint, API",
    )
    shares = []
    for stage in (*STAGES, "first prediction"):
        samples = [r[stage] * 1000 for r in runs]
        share = sum(samples) / sum(r["total"] * 1000 for r in runs)
        shares.append(measure(NAME, f"  stage: {stage}", samples, f"{share:.0%} of the total"))
    return [total, *shares]


def predict_path(stack: client.Stack, model: str, row: list[float]) -> list[Measurement]:
    endpoint = str((client.model_item(stack, model) or {})["live"]["endpoint"])
    body = json.dumps({"instances": [row]}).encode()
    url = f"{stack.api_url}/models/{model}/predictions"
    local = threading.local()

    def through_api() -> None:
        request = urllib.request.Request(
            url, data=body, headers={"x-api-key": stack.api_key, "Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    def runtime_alone() -> None:
        if not hasattr(local, "runtime"):
            local.runtime = stack.client("sagemaker-runtime")
        local.runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body=",".join(map(str, row))
        )

    measurements = []
    for workers in CONCURRENCY:
        runtime_samples, runtime_rate = concurrently(runtime_alone, workers, PREDICT_REQUESTS)
        runtime = measure(
            PREDICT,
            f"runtime alone, concurrency {workers}",
            runtime_samples,
            "InvokeEndpoint, 1 row",
            throughput=runtime_rate,
            throughput_unit="req/s",
            with_p99=True,
        )
        api_samples, api_rate = concurrently(through_api, workers, PREDICT_REQUESTS)
        api = measure(
            PREDICT,
            f"API -> function -> runtime, concurrency {workers}",
            api_samples,
            f"x{runtime_rate / api_rate:.1f} fewer req/s",
            baseline=runtime,
            throughput=api_rate,
            throughput_unit="req/s",
            with_p99=True,
        )
        measurements += [runtime, api]
    return measurements


_PROFILED_CALLS = """
import cProfile, json, os, pstats, sys, time
code_dir, event_file, model, row, calls = sys.argv[1:6]
sys.path[:0] = [code_dir]
import handler
event = json.load(open(event_file))
event.update(
    path=f"/models/{model}/predictions",
    pathParameters={"model": model},
    body=json.dumps({"instances": [json.loads(row)]}),
    headers={**event.get("headers", {}), "Content-Type": "application/json"},
)
class Context:
    function_name = "predict"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:predict"
    aws_request_id = "bench"
out, sys.stdout = sys.stdout, open(os.devnull, "w")  # Powertools' metrics print to stdout
assert handler.lambda_handler(event, Context())["statusCode"] == 200
profiler, samples = cProfile.Profile(), []
for _ in range(int(calls)):
    start = time.perf_counter()
    profiler.enable()
    handler.lambda_handler(event, Context())
    profiler.disable()
    samples.append((time.perf_counter() - start) * 1000)
sys.stdout = out
stats = pstats.Stats(profiler).stats
def cumulative(name, file_part):
    return sum(v[3] for (f, _, n), v in stats.items() if n == name and file_part in f)
print(json.dumps({
    "samples": samples,
    "invoke": cumulative("_invoke", "serving.py"),
    "lookup": cumulative("model", "runs.py"),
}))
"""


def profile_handler(cloud: LocalCloud, model: str, row: list[float]) -> Measurement:
    """The real predict handler, alone in a child process against the same cloud, profiled."""
    assert cloud.wiring is not None
    assert cloud.endpoints is not None
    function = cloud.wiring.function("PredictFunction")
    environment = function_environment(function, cloud.endpoints, cloud.wiring.region)
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in environment.items() if k != "PATH"})
    try:
        output, peak_mb = run_child(
            _PROFILED_CALLS,
            str(function.code_dir),
            str(ROOT / "events" / "predict.json"),
            model,
            json.dumps(row),
            str(PROFILE_CALLS),
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    profile = json.loads(output.strip().splitlines()[-1])
    samples = profile["samples"]
    total = sum(samples) / 1000
    invoke, lookup = profile["invoke"] / total, profile["lookup"] / total
    note = (
        f"cProfile: InvokeEndpoint {invoke:.0%}, DynamoDB GetItem {lookup:.0%}, "
        f"the rest (Powertools, routing, parsing) {1 - invoke - lookup:.0%}"
    )
    return measure(
        PREDICT, "predict handler alone, in-process calls", samples, note, peak_mb=peak_mb
    )


def run() -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        work_dir = Path(tmp)
        prepared = prepare(ABALONE, work_dir / "abalone")
        row = [float(v) for v in prepared.test.read_text().splitlines()[0].split(",")[1:]]
        with local_cloud(work_dir) as cloud:
            stack = client.local_stack(cloud.environment())
            measurements = end_to_end(stack, prepared.upload_files(), row)
            measurements += predict_path(stack, "bench-0", row)
            measurements.append(profile_handler(cloud, "bench-0", row))
    return measurements
