"""Runs the template's functions like Lambda does: warm workers, timeouts, async retries.

Each function gets long-lived worker processes (warm execution environments) with the
environment the template gives it, pointed at the local cloud through the standard endpoint
variables: one to start with, more while synchronous calls overlap. Asynchronous invocations run
one at a time per function (S3 notifications, EventBridge rules), are retried twice and then
recorded on the function's OnFailure queue, as Lambda's event invoke config does.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from xgbpipe.local.faults import FAULTS_VARIABLE
from xgbpipe.local.wiring import Function, Wiring

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class Endpoints:
    """Where the local cloud's services listen."""

    services: str
    sagemaker: str
    lambda_api: str | None = None


def aws_environment(endpoints: Endpoints, region: str) -> dict[str, str]:
    """The variables that point boto3 and the AWS CLI at the local cloud."""
    environment = {
        "AWS_ENDPOINT_URL": endpoints.services,
        "AWS_ENDPOINT_URL_SAGEMAKER": endpoints.sagemaker,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoints.sagemaker,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **DUMMY_CREDENTIALS,
    }
    if endpoints.lambda_api:
        environment["AWS_ENDPOINT_URL_LAMBDA"] = endpoints.lambda_api
    return environment


def function_environment(
    function: Function, endpoints: Endpoints, region: str, faults_path: Path | None = None
) -> dict[str, str]:
    """A clean process environment like Lambda's: the template's variables, then the reserved."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1",
        **function.environment,
        **aws_environment(endpoints, region),
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{function.logical_id}",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "_HANDLER": function.handler,
        # What `sam local` sets: Powertools' tracer stays off without an X-Ray daemon.
        "AWS_SAM_LOCAL": "true",
        **({FAULTS_VARIABLE: str(faults_path)} if faults_path else {}),
    }


@dataclass(frozen=True)
class Invocation:
    """One invocation's outcome: the handler's result, or Lambda's error body."""

    request_id: str
    payload: Any
    failed: bool = False

    @property
    def function_error(self) -> str | None:
        return "Unhandled" if self.failed else None


class FunctionWorker:
    """One warm execution environment; invocations run one at a time, killed on timeout."""

    def __init__(
        self,
        function: Function,
        environment: Mapping[str, str],
        log_file: IO[str] | None = None,
    ) -> None:
        self.function = function
        self.environment = dict(environment)
        self.log_file = log_file
        self._process: subprocess.Popen[str] | None = None
        self._responses: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        request_id = request_id or str(uuid.uuid4())
        with self._lock:
            process = self._ensure_started()
            deadline_ms = int(time.time() * 1000) + self.function.timeout * 1000
            request = {"event": event, "context": self._context(request_id, deadline_ms)}
            assert process.stdin is not None
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
                line = self._responses.get(timeout=self.function.timeout)
            except queue.Empty:
                self._kill()
                return Invocation(request_id, self._timed_out(request_id), failed=True)
            except BrokenPipeError:
                line = None
            if line is None:
                code = self._kill()
                return Invocation(request_id, _runtime_exit(request_id, code), failed=True)
            response = json.loads(line)
            if "error" in response:
                return Invocation(request_id, response["error"], failed=True)
            return Invocation(request_id, response["result"])

    def stop(self) -> None:
        # Killing first ends an invocation in progress, which holds the lock until it returns.
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        with self._lock:
            self._kill()

    def _context(self, request_id: str, deadline_ms: int) -> dict[str, Any]:
        return {
            "function_name": self.function.name,
            "function_version": "$LATEST",
            "invoked_function_arn": self.function.arn,
            "memory_limit_in_mb": self.function.memory_mb,
            "aws_request_id": request_id,
            "log_group_name": f"/aws/lambda/{self.function.name}",
            "log_stream_name": f"local/{self.function.logical_id}",
            "deadline_ms": deadline_ms,
        }

    def _timed_out(self, request_id: str) -> dict[str, Any]:
        return {
            "errorType": "Sandbox.Timedout",
            "errorMessage": (
                f"RequestId: {request_id} Error: Task timed out after "
                f"{self.function.timeout:.2f} seconds"
            ),
        }

    def _ensure_started(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        # Run by path, not as a module: the function's process must not need xgbpipe installed.
        command = [
            sys.executable,
            str(WORKER_SCRIPT),
            self.function.handler,
            str(self.function.code_dir),
            *(str(layer) for layer in self.function.layer_dirs),
        ]
        self._process = subprocess.Popen(
            command,
            cwd=self.function.code_dir,
            env=self.environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
        )
        self._responses = queue.Queue()
        threading.Thread(
            target=_read_lines,
            args=(self._process.stdout, self._responses),
            name=f"{self.function.logical_id}-responses",
            daemon=True,
        ).start()
        return self._process

    def _kill(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        code = process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        return code


class Invocable(Protocol):
    function: Function

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation: ...


class FunctionPool:
    """A function's warm execution environments: as many as calls run at once, up to a cap.

    Lambda scales a function out under concurrent invocations; so do synchronous calls here (the
    API's), each new environment started only when every warm one is busy.
    """

    def __init__(
        self,
        function: Function,
        environment: Mapping[str, str],
        log_file: IO[str] | None = None,
        max_environments: int = 8,
    ) -> None:
        self.function = function
        self.max_environments = max_environments
        self._new = lambda: FunctionWorker(function, environment, log_file)
        self._all = [self._new()]
        self._idle = list(self._all)
        self._closed = False
        self._changed = threading.Condition()

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        worker = self._acquire()
        try:
            return worker.invoke(event, request_id)
        finally:
            with self._changed:
                self._idle.append(worker)
                self._changed.notify()

    def stop(self) -> None:
        with self._changed:
            self._closed = True
            workers = list(self._all)
            self._changed.notify_all()
        for worker in workers:
            worker.stop()

    def _acquire(self) -> FunctionWorker:
        with self._changed:
            while not self._idle and not self._closed:
                if len(self._all) < self.max_environments:
                    worker = self._new()
                    self._all.append(worker)
                    return worker
                self._changed.wait()
            if self._closed:
                raise RuntimeError(f"{self.function.logical_id} is shutting down")
            return self._idle.pop()


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _runtime_exit(request_id: str, code: int | None) -> dict[str, Any]:
    return {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit {code}",
    }


FailureSink = Callable[[str, dict[str, Any]], None]


@dataclass
class _AsyncEvent:
    event: Any
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: int = 0


@dataclass(frozen=True)
class Attempt:
    """One attempt at an asynchronous event, as Lambda's logs would show it."""

    event: Any
    number: int
    invocation: Invocation


# Attempts remembered per function: enough for tests to replay a chain's events and count retries.
JOURNAL_LENGTH = 500


class AsyncInvoker:
    """Lambda's asynchronous invocation: an event queue, retries, then the OnFailure record."""

    def __init__(
        self,
        worker: Invocable,
        send_failure: FailureSink,
        retry_delays: tuple[float, ...] = (60.0, 120.0),
    ) -> None:
        self.worker = worker
        self.function = worker.function
        self.send_failure = send_failure
        self.retry_delays = retry_delays
        self._events: queue.Queue[_AsyncEvent | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()
        self.journal: deque[Attempt] = deque(maxlen=JOURNAL_LENGTH)
        self._thread = threading.Thread(
            target=self._run, name=f"{self.function.logical_id}-async", daemon=True
        )
        self._thread.start()

    @property
    def pending(self) -> int:
        """Events accepted and not yet finished (queued, running or waiting for a retry)."""
        with self._pending_lock:
            return self._pending

    def submit(self, event: Any) -> str:
        item = _AsyncEvent(event)
        self._change_pending(1)
        self._events.put(item)
        return item.request_id

    def stop(self) -> None:
        self._stopping.set()
        self._events.put(None)
        self._thread.join(timeout=5)

    def _change_pending(self, delta: int) -> None:
        with self._pending_lock:
            self._pending += delta

    def _run(self) -> None:
        while (item := self._events.get()) is not None:
            item.attempts += 1
            invocation = self.worker.invoke(item.event, item.request_id)
            if self._stopping.is_set():
                return
            self.journal.append(Attempt(item.event, item.attempts, invocation))
            if not invocation.failed:
                self._change_pending(-1)
                continue
            retries_done = item.attempts - 1
            if retries_done < self.function.max_retry_attempts:
                delay = self.retry_delays[min(retries_done, len(self.retry_delays) - 1)]
                log.warning(
                    "%s failed (attempt %d), retrying in %.1fs: %s",
                    self.function.logical_id,
                    item.attempts,
                    delay,
                    invocation.payload.get("errorMessage"),
                )
                timer = threading.Timer(delay, self._events.put, (item,))
                timer.daemon = True
                timer.start()
                continue
            self._record_failure(item, invocation)
            self._change_pending(-1)

    def _record_failure(self, item: _AsyncEvent, invocation: Invocation) -> None:
        log.error(
            "%s failed %d times, giving up: %s",
            self.function.logical_id,
            item.attempts,
            invocation.payload.get("errorMessage"),
        )
        if self.function.on_failure_queue is None:
            return
        record = failure_record(self.function, item.event, invocation, item.attempts)
        try:
            self.send_failure(self.function.on_failure_queue, record)
        except Exception:
            log.exception("could not record the failure of %s", self.function.logical_id)


def failure_record(
    function: Function, event: Any, invocation: Invocation, attempts: int
) -> dict[str, Any]:
    """The record Lambda sends to an OnFailure destination when retries are exhausted."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{function.arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": invocation.function_error,
        },
        "responsePayload": invocation.payload,
    }


class Runner:
    """Every function of the template, invocable synchronously or asynchronously."""

    def __init__(
        self,
        wiring: Wiring,
        endpoints: Endpoints,
        send_failure: FailureSink,
        log_dir: Path | None = None,
        retry_delays: tuple[float, ...] = (60.0, 120.0),
        max_environments: int = 8,
        faults_path: Path | None = None,
    ) -> None:
        self.wiring = wiring
        self._log_files: list[IO[str]] = []
        self.pools: dict[str, FunctionPool] = {}
        self.invokers: dict[str, AsyncInvoker] = {}
        for function in wiring.functions:
            log_file = None
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                log_file = (log_dir / f"{function.logical_id}.log").open("a", buffering=1)
                self._log_files.append(log_file)
            pool = FunctionPool(
                function,
                function_environment(function, endpoints, wiring.region, faults_path),
                log_file,
                max_environments,
            )
            self.pools[function.logical_id] = pool
            self.invokers[function.logical_id] = AsyncInvoker(pool, send_failure, retry_delays)

    def invoke(self, name: str, event: Any) -> Invocation:
        return self.pools[self.wiring.function(name).logical_id].invoke(event)

    def invoke_async(self, name: str, event: Any) -> str:
        return self.invokers[self.wiring.function(name).logical_id].submit(event)

    def pending(self) -> dict[str, int]:
        return {logical_id: invoker.pending for logical_id, invoker in self.invokers.items()}

    def journal(self, name: str) -> list[Attempt]:
        """The function's latest asynchronous attempts, oldest first."""
        return list(self.invokers[self.wiring.function(name).logical_id].journal)

    def stop(self) -> None:
        for invoker in self.invokers.values():
            invoker.stop()
        for pool in self.pools.values():
            pool.stop()
        for log_file in self._log_files:
            log_file.close()
