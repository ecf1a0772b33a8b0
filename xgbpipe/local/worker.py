"""The process one local function lives in, like a warm Lambda execution environment.

Started by the runner as `python worker.py HANDLER CODE_DIR [LAYER_DIR ...]`, it
imports the handler once and then serves invocations, one JSON line in, one JSON line out, on
the stdin/stdout it was started with. The handler's own stdout (prints, Powertools logs) goes to
stderr, the function's log. Standard library only: it runs beside the function's code.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

# xgbpipe.local.faults.FAULTS_VARIABLE, spelled out: this script must not import xgbpipe unasked.
FAULTS_VARIABLE = "XGBPIPE_LOCAL_FAULTS"


@dataclass
class LambdaContext:
    """The attributes and method Lambda's Python runtime gives a handler's context."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def error_payload(
    error: BaseException, request_id: str, error_type: str | None = None
) -> dict[str, Any]:
    """The body Lambda returns for an unhandled exception."""
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def peak_memory_mb() -> int:
    """The process's peak resident memory: VmHWM on Linux. Not ru_maxrss, which Linux carries
    over from the parent at exec: a worker forked from the local cloud would report its size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // (1 << 20) if sys.platform == "darwin" else peak // 1024  # bytes / KiB


def report_line(context: LambdaContext, seconds: float) -> str:
    """Lambda's REPORT log line. Max Memory Used is the environment's peak so far, as on Lambda
    (a warm environment keeps its peak across invocations)."""
    return (
        f"REPORT RequestId: {context.aws_request_id}\tDuration: {seconds * 1000:.2f} ms\t"
        f"Memory Size: {context.memory_limit_in_mb} MB\tMax Memory Used: {peak_memory_mb()} MB"
    )


def load_handler(handler: str, code_dir: str, layer_dirs: list[str]) -> Callable[..., Any]:
    # Lambda's order: the function's code (/var/task), then its layers (/opt/python), then the
    # runtime; the worker script's own directory is not on the path.
    runtime_path = sys.path[1:]
    sys.path[:] = [code_dir, *layer_dirs, *runtime_path]
    module_name, _, function_name = handler.rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    function: Callable[..., Any] = getattr(module, function_name)
    return function


def serve(handler: Callable[..., Any] | BaseException, requests: TextIO, responses: TextIO) -> None:
    for line in requests:
        request = json.loads(line)
        context = LambdaContext(**request["context"])
        started = time.perf_counter()
        if isinstance(handler, BaseException):
            response = {
                "error": error_payload(handler, context.aws_request_id, "Runtime.ImportModuleError")
            }
        else:
            try:
                result = handler(request["event"], context)
                response = {"result": json.loads(json.dumps(result))}
            except Exception as error:
                traceback.print_exc()
                response = {"error": error_payload(error, context.aws_request_id)}
        print(report_line(context, time.perf_counter() - started), flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
        responses.write(json.dumps(response) + "\n")
        responses.flush()


def main(argv: list[str]) -> None:
    handler_name, code_dir, *layer_dirs = argv
    responses = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    handler: Callable[..., Any] | BaseException
    try:
        handler = load_handler(handler_name, code_dir, layer_dirs)
    except Exception as error:
        traceback.print_exc()
        handler = error
    if os.environ.get(FAULTS_VARIABLE):
        # Only in a local cloud, which runs this with the project's Python: xgbpipe is there.
        from xgbpipe.local.faults import install_call_faults

        install_call_faults(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    serve(handler, sys.stdin, responses)


if __name__ == "__main__":
    main(sys.argv[1:])
