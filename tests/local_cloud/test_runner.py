"""The function runner: Lambda's environment, context, timeout and async retries."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xgbpipe.local.runner import (
    AsyncInvoker,
    Endpoints,
    FunctionPool,
    FunctionWorker,
    function_environment,
)
from xgbpipe.local.wiring import Function

ENDPOINTS = Endpoints("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")

HANDLER = """
import json, os, sys, time
import pipeline_common

CALLS = []

def lambda_handler(event, context):
    CALLS.append(event)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        with open(event["fail"], "a") as attempts:
            attempts.write(json.dumps(event) + "\\n")
        raise ValueError("bad event")
    if event.get("exit"):
        os._exit(3)
    if event.get("meet"):
        # Two calls meet only if they run at once: each marks its arrival and looks for the other.
        mine, other = event["meet"]
        open(mine, "w").close()
        deadline = time.monotonic() + event["patience"]
        while not os.path.exists(other) and time.monotonic() < deadline:
            time.sleep(0.01)
        return {"pid": os.getpid(), "met": os.path.exists(other)}
    print("this goes to the function's log, not to the protocol")
    return {
        "pid": os.getpid(),
        "calls": len(CALLS),
        "path": sys.path[:2],
        "layer": pipeline_common.LAYER,
        "environment": {k: v for k, v in os.environ.items()},
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "remaining": context.get_remaining_time_in_millis(),
        },
    }
"""

Make = Callable[..., FunctionWorker]


@pytest.fixture
def make_worker(tmp_path: Path) -> Iterator[Make]:
    code_dir = tmp_path / "functions" / "echo"
    code_dir.mkdir(parents=True)
    (code_dir / "handler.py").write_text(textwrap.dedent(HANDLER))
    layer_dir = tmp_path / "layers" / "common"
    (layer_dir / "pipeline_common").mkdir(parents=True)
    (layer_dir / "pipeline_common" / "__init__.py").write_text('LAYER = "from the layer"\n')
    workers: list[FunctionWorker] = []

    def make(timeout: int = 5, retries: int = 2) -> FunctionWorker:
        function = Function(
            logical_id="EchoFunction",
            name="xgbpipe-local-EchoFunction",
            arn="arn:aws:lambda:us-east-1:123456789012:function:xgbpipe-local-EchoFunction",
            code_dir=code_dir,
            handler="handler.lambda_handler",
            environment={"RUNS_TABLE": "runs", "AWS_REGION": "eu-west-1"},
            timeout=timeout,
            memory_mb=256,
            layer_dirs=(layer_dir,),
            max_retry_attempts=retries,
            on_failure_queue="FailedEventsQueue",
        )
        log_file = (tmp_path / "echo.log").open("a")
        worker = FunctionWorker(
            function, function_environment(function, ENDPOINTS, "us-east-1"), log_file
        )
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


def test_handler_sees_the_template_environment_and_the_local_endpoints(make_worker: Make) -> None:
    result = make_worker().invoke({}).payload
    environment = result["environment"]
    assert environment["RUNS_TABLE"] == "runs"
    assert environment["AWS_ENDPOINT_URL"] == ENDPOINTS.services
    assert environment["AWS_ENDPOINT_URL_SAGEMAKER"] == ENDPOINTS.sagemaker
    assert environment["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == ENDPOINTS.sagemaker
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "xgbpipe-local-EchoFunction"
    assert environment["AWS_SAM_LOCAL"] == "true"
    # Reserved variables win over the template's, as on Lambda.
    assert environment["AWS_REGION"] == "us-east-1"
    assert result["layer"] == "from the layer"
    assert result["path"][0].endswith("functions/echo")
    assert result["path"][1].endswith("layers/common")


def test_handler_gets_a_lambda_context(make_worker: Make) -> None:
    invocation = make_worker(timeout=7).invoke({})
    context = invocation.payload["context"]
    assert context["function_name"] == "xgbpipe-local-EchoFunction"
    assert context["memory_limit_in_mb"] == 256
    assert context["invoked_function_arn"].endswith(":function:xgbpipe-local-EchoFunction")
    assert context["aws_request_id"] == invocation.request_id
    assert 0 < context["remaining"] <= 7000


def test_worker_stays_warm_between_invocations(make_worker: Make) -> None:
    worker = make_worker()
    first, second = worker.invoke({}).payload, worker.invoke({}).payload
    assert first["pid"] == second["pid"]
    assert (first["calls"], second["calls"]) == (1, 2)


def test_handler_error_is_lambdas_error_body(make_worker: Make, tmp_path: Path) -> None:
    invocation = make_worker().invoke({"fail": str(tmp_path / "attempts")})
    assert invocation.failed
    assert invocation.function_error == "Unhandled"
    assert invocation.payload["errorType"] == "ValueError"
    assert invocation.payload["errorMessage"] == "bad event"
    assert invocation.payload["stackTrace"]


def test_timeout_kills_the_worker_and_the_next_call_gets_a_fresh_one(make_worker: Make) -> None:
    worker = make_worker(timeout=1)
    before = worker.invoke({}).payload["pid"]
    timed_out = worker.invoke({"sleep": 30})
    assert timed_out.failed
    assert timed_out.payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in timed_out.payload["errorMessage"]
    after = worker.invoke({}).payload
    assert after["pid"] != before
    assert after["calls"] == 1


def test_a_crashed_worker_is_reported_and_replaced(make_worker: Make) -> None:
    worker = make_worker()
    crashed = worker.invoke({"exit": True})
    assert crashed.payload["errorType"] == "Runtime.ExitError"
    assert worker.invoke({}).payload["calls"] == 1


def test_async_failure_is_retried_twice_then_recorded(make_worker: Make, tmp_path: Path) -> None:
    recorded: list[tuple[str, dict[str, Any]]] = []
    done = threading.Event()

    def send_failure(queue: str, record: dict[str, Any]) -> None:
        recorded.append((queue, record))
        done.set()

    invoker = AsyncInvoker(make_worker(), send_failure, retry_delays=(0.01, 0.01))
    attempts = tmp_path / "attempts"
    event = {"fail": str(attempts)}
    request_id = invoker.submit(event)
    assert done.wait(timeout=30)
    invoker.stop()

    assert len(attempts.read_text().splitlines()) == 3
    ((queue, record),) = recorded
    assert queue == "FailedEventsQueue"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestPayload"] == event
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "bad event"
    assert invoker.pending == 0
    json.dumps(record)


def test_async_success_is_not_retried(make_worker: Make) -> None:
    recorded: list[Any] = []
    worker = make_worker()
    invoker = AsyncInvoker(worker, lambda queue, record: recorded.append(record), (0.01,))
    invoker.submit({})
    invoker.stop()
    assert worker.invoke({}).payload["calls"] == 2
    assert recorded == []


@pytest.mark.parametrize("environments", [1, 2])
def test_overlapping_calls_scale_out_up_to_the_cap(
    make_worker: Make, tmp_path: Path, environments: int
) -> None:
    template = make_worker()
    pool = FunctionPool(template.function, template.environment, max_environments=environments)
    first, second = tmp_path / "first", tmp_path / "second"
    patience = 30.0 if environments == 2 else 0.5
    results: dict[str, Any] = {}

    def call(name: str, meet: list[str]) -> None:
        results[name] = pool.invoke({"meet": meet, "patience": patience}).payload

    try:
        threads = [
            threading.Thread(target=call, args=("a", [str(first), str(second)])),
            threading.Thread(target=call, args=("b", [str(second), str(first)])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        pool.stop()

    pids = {results["a"]["pid"], results["b"]["pid"]}
    if environments == 2:
        assert results["a"]["met"]
        assert results["b"]["met"]
        assert len(pids) == 2
    else:
        # One environment: the calls run one after the other, so the first never meets the second.
        assert sorted([results["a"]["met"], results["b"]["met"]]) == [False, True]
        assert len(pids) == 1


def test_a_stopped_pool_takes_no_more_calls(make_worker: Make) -> None:
    template = make_worker()
    pool = FunctionPool(template.function, template.environment)
    pool.stop()

    with pytest.raises(RuntimeError, match="shutting down"):
        pool.invoke({})
