"""A local API Gateway (REST API, v1 proxy integration) for the template's Api routes.

Requests on http://<host>:<port>/<stage>/<path> become the proxy event API Gateway gives a Lambda
function, and the function's proxy response becomes the HTTP response. Where the template asks for
an API key, a request without the local key gets API Gateway's 403 {"message": "Forbidden"}.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from xgbpipe.local.httpserver import BackgroundHttpServer, JsonRequestHandler
from xgbpipe.local.runner import Invocation
from xgbpipe.local.wiring import ACCOUNT_ID, ApiRoute

Invoke = Callable[[str, Any], Invocation]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def route_pattern(path: str) -> re.Pattern[str]:
    """A regex for an API Gateway resource path: {name} is one segment, {name+} the rest."""
    pattern = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(path))
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{pattern}$")


def _error(status: int, message: str, error_type: str) -> HttpResponse:
    return HttpResponse(
        status,
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)],
        json.dumps({"message": message}).encode(),
    )


def proxy_event(
    route: ApiRoute, request: HttpRequest, resource_path: str, path_parameters: dict[str, str]
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy integration event for a request on a route."""
    split = urlsplit(request.raw_path)
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    body: str | None = None
    is_base64 = False
    if request.body:
        try:
            body = request.body.decode()
        except UnicodeDecodeError:
            body, is_base64 = base64.b64encode(request.body).decode(), True
    lowered = {name.lower(): value for name, value in headers.items()}
    now = datetime.now(UTC)
    return {
        "resource": route.path,
        "path": resource_path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "extendedRequestId": str(uuid.uuid4()),
            "httpMethod": request.method,
            "identity": {
                "apiKey": lowered.get("x-api-key"),
                "apiKeyId": "local" if "x-api-key" in lowered else None,
                "sourceIp": request.source_ip,
                "userAgent": lowered.get("user-agent"),
            },
            "path": split.path,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(time.time() * 1000),
            "resourceId": "local",
            "resourcePath": route.path,
            "stage": route.stage,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def proxy_response(invocation: Invocation) -> HttpResponse:
    """The HTTP response for a function's proxy result; a failed or malformed one is a 502."""
    result = invocation.payload
    if invocation.failed or not isinstance(result, dict) or "statusCode" not in result:
        return _error(502, "Internal server error", "InternalServerErrorException")
    headers = [(name, str(value)) for name, value in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(value)) for value in values)
    body = result.get("body") or ""
    try:
        payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    except (binascii.Error, AttributeError):
        return _error(502, "Internal server error", "InternalServerErrorException")
    return HttpResponse(int(result["statusCode"]), headers, payload)


class ApiGateway:
    def __init__(
        self, routes: tuple[ApiRoute, ...], invoke: Invoke, api_key: str, host: str, port: int
    ) -> None:
        self.routes = [(route, route_pattern(route.path)) for route in routes]
        self.invoke = invoke
        self.api_key = api_key
        self._http = BackgroundHttpServer(self._handler_class(), host, port)

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def handle(self, request: HttpRequest) -> HttpResponse:
        stage, _, resource_path = urlsplit(request.raw_path).path.lstrip("/").partition("/")
        resource_path = "/" + unquote(resource_path)
        for route, pattern in self.routes:
            match = pattern.match(resource_path)
            if match is None or route.stage != stage or route.method not in (request.method, "ANY"):
                continue
            supplied = next(
                (value for name, value in request.headers if name.lower() == "x-api-key"), None
            )
            if route.api_key_required and supplied != self.api_key:
                return _error(403, "Forbidden", "ForbiddenException")
            event = proxy_event(route, request, resource_path, match.groupdict())
            return proxy_response(self.invoke(route.function, event))
        # What API Gateway answers for a path or method it does not know.
        return _error(403, "Missing Authentication Token", "MissingAuthenticationTokenException")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(JsonRequestHandler):
            def _serve(self) -> None:
                request = HttpRequest(
                    method=self.command,
                    raw_path=self.path,
                    headers=list(self.headers.items()),
                    body=self.read_body(),
                    source_ip=self.client_address[0],
                )
                response = gateway.handle(request)
                self.send_response(response.status)
                for name, value in response.headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            # BaseHTTPRequestHandler dispatches on do_<METHOD>.
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve  # noqa: N815

        return Handler
