"""The local API gateway: REST API v1 proxy events, responses and the API key."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from xgbpipe.local.apigateway import ApiGateway, HttpRequest
from xgbpipe.local.runner import Invocation
from xgbpipe.local.wiring import ApiRoute

KEY = "k" * 40
ROUTES = (
    ApiRoute("PredictionApi", "GET", "/models/{model}", "PredictFunction", True, "v1"),
    ApiRoute("PredictionApi", "POST", "/models/{model}/predictions", "PredictFunction", True, "v1"),
    ApiRoute("PredictionApi", "GET", "/health", "HealthFunction", False, "v1"),
)


class FakeFunctions:
    def __init__(self, result: Any = None, failed: bool = False) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.result = result or {"statusCode": 201, "headers": {"X-Model": "m"}, "body": "made"}
        self.failed = failed

    def __call__(self, function: str, event: Any) -> Invocation:
        self.events.append((function, event))
        return Invocation("request-1", self.result, failed=self.failed)


def gateway(functions: FakeFunctions) -> ApiGateway:
    return ApiGateway(ROUTES, functions, KEY, "127.0.0.1", 0)


def request(method: str, path: str, body: bytes = b"", key: str | None = KEY) -> HttpRequest:
    headers = [("Host", "127.0.0.1:3000"), ("Content-Type", "application/json")]
    if key is not None:
        headers.append(("x-api-key", key))
    return HttpRequest(method, path, headers, body)


def test_request_becomes_a_rest_api_proxy_event() -> None:
    functions = FakeFunctions()
    response = gateway(functions).handle(
        request("POST", "/v1/models/abalone/predictions?verbose=1&tag=a&tag=b", b'{"instances":[]}')
    )
    assert response.status == 201
    assert response.body == b"made"
    assert ("X-Model", "m") in response.headers
    ((function, event),) = functions.events
    assert function == "PredictFunction"
    assert event["resource"] == "/models/{model}/predictions"
    assert event["path"] == "/models/abalone/predictions"
    assert event["httpMethod"] == "POST"
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["multiValueHeaders"]["x-api-key"] == [KEY]
    assert event["queryStringParameters"] == {"verbose": "1", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"verbose": ["1"], "tag": ["a", "b"]}
    assert event["pathParameters"] == {"model": "abalone"}
    assert event["stageVariables"] is None
    assert event["body"] == '{"instances":[]}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "v1"
    assert context["resourcePath"] == "/models/{model}/predictions"
    assert context["path"] == "/v1/models/abalone/predictions"
    assert context["identity"]["apiKey"] == KEY
    assert context["requestId"]


def test_get_without_body_has_null_body_and_query() -> None:
    functions = FakeFunctions()
    gateway(functions).handle(request("GET", "/v1/models/abalone"))
    ((_, event),) = functions.events
    assert event["body"] is None
    assert event["queryStringParameters"] is None
    assert event["pathParameters"] == {"model": "abalone"}


@pytest.mark.parametrize("key", [None, "wrong"])
def test_missing_or_wrong_key_is_forbidden(key: str | None) -> None:
    functions = FakeFunctions()
    response = gateway(functions).handle(request("GET", "/v1/models/abalone", key=key))
    assert response.status == 403
    assert json.loads(response.body) == {"message": "Forbidden"}
    assert functions.events == []


def test_route_without_key_requirement_needs_no_key() -> None:
    functions = FakeFunctions()
    assert gateway(functions).handle(request("GET", "/v1/health", key=None)).status == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nowhere"), ("DELETE", "/v1/models/abalone"), ("GET", "/v2/models/abalone")],
)
def test_unknown_route_is_missing_authentication_token(method: str, path: str) -> None:
    response = gateway(FakeFunctions()).handle(request(method, path))
    assert response.status == 403
    assert json.loads(response.body) == {"message": "Missing Authentication Token"}


def test_failed_function_is_a_502() -> None:
    functions = FakeFunctions({"errorMessage": "boom"}, failed=True)
    response = gateway(functions).handle(request("GET", "/v1/models/abalone"))
    assert response.status == 502
    assert json.loads(response.body) == {"message": "Internal server error"}


def test_served_over_http() -> None:
    functions = FakeFunctions({"statusCode": 404, "body": json.dumps({"error": "no model"})})
    api = gateway(functions)
    api.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(
                urllib.request.Request(f"{api.url}/v1/models/abalone", headers={"x-api-key": KEY})
            )
        assert raised.value.code == 404
        assert json.loads(raised.value.read()) == {"error": "no model"}
        with pytest.raises(urllib.error.HTTPError) as forbidden:
            urllib.request.urlopen(f"{api.url}/v1/models/abalone")
        assert forbidden.value.code == 403
    finally:
        api.stop()
