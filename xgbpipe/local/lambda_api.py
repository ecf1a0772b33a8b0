"""Lambda's Invoke API for the local functions, so `aws lambda invoke` and boto3 work against
them (AWS_ENDPOINT_URL_LAMBDA)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from xgbpipe.local.httpserver import BackgroundHttpServer, JsonRequestHandler
from xgbpipe.local.runner import Runner
from xgbpipe.local.wiring import WiringError

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
STATUS_PATH = "/_xgbpipe/status"


def function_name(name_or_arn: str) -> str:
    """A function's name from a name, a partial or a full ARN, with or without a qualifier."""
    if ":function:" in name_or_arn:
        name_or_arn = name_or_arn.split(":function:", 1)[1]
    return name_or_arn.split(":", 1)[0]


class LambdaApi:
    def __init__(self, host: str, port: int) -> None:
        self._runner: Runner | None = None
        self._idle: Callable[[], bool] = lambda: True
        self._http = BackgroundHttpServer(self._handler_class(), host, port)

    @property
    def url(self) -> str:
        return self._http.url

    def start(self, runner: Runner, idle: Callable[[], bool] | None = None) -> None:
        self._runner = runner
        if idle is not None:
            self._idle = idle
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(JsonRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's dispatch
                if self.path == STATUS_PATH and api._runner is not None:
                    self.send_json(200, {"pending": api._runner.pending(), "idle": api._idle()})
                else:
                    self.send_json(404, {"message": f"no route {self.path}"})

            def do_POST(self) -> None:  # noqa: N802
                match = _INVOKE_PATH.match(self.path.split("?", 1)[0])
                if match is None or api._runner is None:
                    self.send_json(404, {"message": f"no route {self.path}"})
                    return
                api._invoke(self, function_name(match["name"]))

        return Handler

    def _invoke(self, request: JsonRequestHandler, name: str) -> None:
        assert self._runner is not None
        try:
            self._runner.wiring.function(name)
        except WiringError as error:
            request.send_json(
                404,
                {"Type": "User", "message": str(error)},
                {"x-amzn-ErrorType": "ResourceNotFoundException"},
            )
            return
        raw = request.read_body()
        try:
            event: Any = json.loads(raw) if raw else {}
        except json.JSONDecodeError as error:
            request.send_json(
                400,
                {"Type": "User", "message": f"Could not parse request body into json: {error}"},
                {"x-amzn-ErrorType": "InvalidRequestContentException"},
            )
            return
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            request.send(204, b"")
        elif invocation_type == "Event":
            request_id = self._runner.invoke_async(name, event)
            request.send(202, b"", {"x-amzn-RequestId": request_id})
        else:
            invocation = self._runner.invoke(name, event)
            headers = {
                "x-amzn-RequestId": invocation.request_id,
                "X-Amz-Executed-Version": "$LATEST",
            }
            if invocation.function_error:
                headers["X-Amz-Function-Error"] = invocation.function_error
            request.send_json(200, invocation.payload, headers)
