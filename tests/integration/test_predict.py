"""predict with moto: the API's answers, good and bad, for the live model."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from functions.predict.handler import lambda_handler
from tests.helpers import load_event
from tests.integration.conftest import Stack, abalone_like
from tests.integration.flow import CONTEXT, deploy, start

ROWS = [
    [0.0, 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15],
    [1, 0.53, 0.42, 0.135, 0.677, 0.25, 0.14, 0.21],
]


def api(
    method: str, path: str, body: str | None = None, content_type: str = "application/json"
) -> dict[str, Any]:
    event = load_event("predict.json")
    model = path.split("/")[2]
    event.update(
        httpMethod=method,
        path=path,
        resource="/models/{model}/predictions"
        if path.endswith("predictions")
        else "/models/{model}",
        pathParameters={"model": model},
        body=body,
    )
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    response = lambda_handler(event, CONTEXT)
    return {"status": response["statusCode"], "body": json.loads(response["body"])}


@pytest.fixture
def live(stack: Stack) -> str:
    joined = [f"{v},{','.join(['0.5'] * 8)},{v + 0.25}" for v in range(1, 30)]
    run_id = deploy(stack, "abalone", abalone_like(30), joined)
    stack.answers["InvokeEndpoint"] = _scores
    return run_id


def _scores(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    rows = params["Body"].decode().splitlines()
    body = "".join(f"{9.5 + i}\n" for i, _ in enumerate(rows)).encode()
    return 200, {"Body": io.BytesIO(body), "ContentType": "text/csv"}


def test_json_rows_are_scored_by_the_live_endpoint(stack: Stack, live: str) -> None:
    response = api("POST", "/models/abalone/predictions", json.dumps({"instances": ROWS}))

    assert response == {
        "status": 200,
        "body": {"predictions": [9.5, 10.5], "model": "abalone", "version": live},
    }
    (request,) = stack.requests("InvokeEndpoint")
    assert request["EndpointName"] == "xgbp-abalone"
    assert (request["ContentType"], request["Accept"]) == ("text/csv", "text/csv")
    assert (
        request["Body"].decode().splitlines()[0] == "0.0,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
    )


def test_csv_rows_are_accepted(stack: Stack, live: str) -> None:
    body = "\n".join(",".join(str(v) for v in row) for row in ROWS) + "\n"

    response = api("POST", "/models/abalone/predictions", body, "text/csv")

    assert response["status"] == 200
    assert response["body"]["predictions"] == [9.5, 10.5]


def test_get_model_describes_the_live_version_and_latest_run(stack: Stack, live: str) -> None:
    response = api("GET", "/models/abalone")

    assert response["status"] == 200
    body = response["body"]
    assert body["live"]["version"] == live
    assert body["live"]["endpoint"] == "xgbp-abalone"
    assert body["live"]["metrics"]["rmse"] == pytest.approx(0.25)
    assert body["latest_run"]["run_id"] == live
    assert body["latest_run"]["status"] == "deployed"


BAD_REQUESTS = {
    "bad JSON": ("{instances: [", "application/json", 400, "not valid JSON"),
    "no instances": ('{"rows": [[1]]}', "application/json", 400, '"instances" list'),
    "wrong width": ('{"instances": [[1, 2, 3]]}', "application/json", 400, "expects 8 features"),
    "non-numeric": (
        json.dumps({"instances": [[1, 2, 3, 4, 5, 6, 7, "x"]]}),
        "application/json",
        400,
        "is not a number",
    ),
    "csv non-numeric": ("1,2,3,4,5,6,7,abc\n", "text/csv", 400, "is not a number"),
    "empty body": ("", "application/json", 400, "body is empty"),
    "no rows": ('{"instances": []}', "application/json", 400, "no rows"),
    "too many rows": (
        json.dumps({"instances": [[1] * 8] * 10_001}),
        "application/json",
        400,
        "more than 10000",
    ),
    "unsupported type": ("<x/>", "application/xml", 415, "not supported"),
    "body over 5 MB": (
        '{"instances": [[1, 2, 3, 4, 5, 6, 7, 8]' + " " * 5_000_000 + "]}",
        "application/json",
        400,
        "larger than 5000000 bytes",
    ),
    "NaN value": (
        '{"instances": [[1, 2, 3, 4, 5, 6, 7, NaN]]}',
        "application/json",
        400,
        "not finite",
    ),
    "boolean value": (
        json.dumps({"instances": [[1, 2, 3, 4, 5, 6, 7, True]]}),
        "application/json",
        400,
        "True is not a number",
    ),
    "instance not a list": ('{"instances": [{"a": 1}]}', "application/json", 400, "is not a list"),
    "nested list": (
        json.dumps({"instances": [[1, 2, 3, 4, 5, 6, 7, [8]]]}),
        "application/json",
        400,
        "[8] is not a number",
    ),
    "csv wrong width": ("1,2,3\n", "text/csv", 400, "row 1 has 3 values"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_that_says_what_to_fix(case: str, stack: Stack, live: str) -> None:
    body, content_type, status, message = BAD_REQUESTS[case]

    response = api("POST", "/models/abalone/predictions", body, content_type)

    assert response["status"] == status
    assert message in response["body"]["message"]
    assert stack.requests("InvokeEndpoint") == []


def test_a_body_that_is_not_utf8_is_a_400(stack: Stack, live: str) -> None:
    event = load_event("predict.json")
    event.update(body="//79/w==", isBase64Encoded=True)

    response = lambda_handler(event, CONTEXT)

    assert response["statusCode"] == 400
    assert "UTF-8" in json.loads(response["body"])["message"]


def test_unknown_model_is_404(stack: Stack) -> None:
    for method, path in (("GET", "/models/nope"), ("POST", "/models/nope/predictions")):
        response = api(method, path, json.dumps({"instances": ROWS}))
        assert response["status"] == 404
        assert "nope" in response["body"]["message"]


def test_model_without_a_live_version_is_404(stack: Stack) -> None:
    start(stack, "abalone", abalone_like(30))

    response = api("POST", "/models/abalone/predictions", json.dumps({"instances": ROWS}))

    assert response["status"] == 404
    assert "no live version yet" in response["body"]["message"]


def test_model_error_is_502_with_the_containers_message(stack: Stack, live: str) -> None:
    stack.answers["InvokeEndpoint"] = lambda _: (
        424,
        {
            "Error": {"Code": "ModelError", "Message": "Received client error (400) from primary"},
            "OriginalStatusCode": 400,
            "OriginalMessage": "Unable to evaluate payload provided: bad",
        },
    )

    response = api("POST", "/models/abalone/predictions", json.dumps({"instances": ROWS}))

    assert response["status"] == 502
    assert "Unable to evaluate payload provided" in response["body"]["message"]


def test_endpoint_not_in_service_is_503(stack: Stack, live: str) -> None:
    stack.answers["InvokeEndpoint"] = lambda _: (
        400,
        {"Error": {"Code": "ValidationError", "Message": "Endpoint is not in service"}},
    )
    stack.answers["DescribeEndpoint"] = lambda _: (
        200,
        {"EndpointName": "xgbp-abalone", "EndpointStatus": "Updating"},
    )

    response = api("POST", "/models/abalone/predictions", json.dumps({"instances": ROWS}))

    assert response["status"] == 503
    assert "Updating" in response["body"]["message"]
