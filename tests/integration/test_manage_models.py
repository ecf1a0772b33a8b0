"""The model-management API (versions, rollback, deletion) and the idle-endpoint check, on moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from pipeline_common import endpoint_tracking
from pipeline_common.config import Settings
from pipeline_common.models import retire_idle
from pipeline_common.reconciliation import STALE_AFTER, reconcile

from functions.manage_models.handler import lambda_handler as manage_models
from tests.helpers import load_event
from tests.integration.conftest import REGION, Stack, abalone_like
from tests.integration.flow import (
    CONTEXT,
    PERFECT_OUTPUT,
    deploy,
    endpoint_answer,
    endpoint_changed,
    job,
)
from tests.integration.test_predict import api


def manage(method: str, path: str, body: str | None = None) -> dict[str, Any]:
    event = load_event("manage_models.json")
    event.update(
        httpMethod=method,
        path=path,
        resource="/models/{model}" + path.split("/", 3)[-1].removeprefix(path.split("/")[2]),
        pathParameters={"model": path.split("/")[2]},
        body=body,
    )
    response = manage_models(event, CONTEXT)
    return {"status": response["statusCode"], "body": json.loads(response["body"])}


@pytest.fixture
def two_versions(stack: Stack) -> tuple[str, str]:
    first = deploy(stack, "abalone", abalone_like(30, seed=1), PERFECT_OUTPUT)
    stack.answers["UpdateEndpoint"] = lambda _: (200, {"EndpointArn": "arn"})
    second_files = {**abalone_like(30, seed=1), "hyperparameters.json": '{"max_depth": 3}'}
    second = deploy(stack, "abalone", second_files, PERFECT_OUTPUT)
    stack.answers["DescribeEndpoint"] = endpoint_answer("InService", job("abalone", second))
    endpoint_changed("abalone", job("abalone", second), "IN_SERVICE")
    assert stack.run("abalone", "_model")["live"]["run_id"] == second
    stack.notifications()
    return first, second


def test_versions_lists_the_deployed_runs_newest_first(
    stack: Stack, two_versions: tuple[str, str]
) -> None:
    first, second = two_versions

    answer = manage("GET", "/models/abalone/versions")

    assert answer["status"] == 200
    body = answer["body"]
    assert body["live_version"] == second
    assert [(v["version"], v["live"]) for v in body["versions"]] == [(second, True), (first, False)]
    assert body["versions"][0]["hyperparameters"]["max_depth"] == "3"
    assert [entry["version"] for entry in body["history"]] == [first, second]


def test_rollback_updates_the_endpoint_and_the_event_makes_it_live(
    stack: Stack, two_versions: tuple[str, str]
) -> None:
    first, second = two_versions

    answer = manage("POST", "/models/abalone/rollback")

    assert answer == {
        "status": 202,
        "body": {
            "model": "abalone",
            "version": first,
            "from": second,
            "endpoint": "xgbp-abalone",
            "status": "rolling_back",
        },
    }
    update = stack.requests("UpdateEndpoint")[-1]
    assert update == {"EndpointName": "xgbp-abalone", "EndpointConfigName": job("abalone", first)}
    again = manage("POST", "/models/abalone/rollback")
    assert again["status"] == 409
    assert "is changing the endpoint" in again["body"]["message"]

    stack.answers["DescribeEndpoint"] = endpoint_answer("InService", job("abalone", first))
    assert endpoint_changed("abalone", job("abalone", first), "IN_SERVICE")["action"] == (
        "rolled_back"
    )

    model = stack.run("abalone", "_model")
    assert model["live"]["run_id"] == first
    assert "deploying_run_id" not in model
    assert "rollback" not in model
    (notice,) = stack.notifications()
    assert (notice["run_id"], notice["status"]) == (first, "rolled_back")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{not json", 400, "must be JSON"),
        ('["x"]', 400, "must be a JSON object"),
        ('{"version": 5}', 400, "must be a JSON object"),
        ('{"version": "0123456789ab"}', 404, "was never deployed"),
    ],
)
def test_bad_rollback_requests_say_what_to_fix(
    stack: Stack, two_versions: tuple[str, str], body: str, status: int, message: str
) -> None:
    answer = manage("POST", "/models/abalone/rollback", body)

    assert answer["status"] == status
    assert message in answer["body"]["message"]
    assert stack.run("abalone", "_model")["live"]["run_id"] == two_versions[1]


def test_unknown_models_answer_404(stack: Stack) -> None:
    for method, path in (
        ("GET", "/models/nobody/versions"),
        ("POST", "/models/nobody/rollback"),
        ("DELETE", "/models/nobody"),
    ):
        answer = manage(method, path)
        assert (answer["status"], answer["body"]["message"]) == (
            404,
            "there is no model named nobody",
        )


def test_delete_removes_the_endpoint_and_predict_says_why(
    stack: Stack, two_versions: tuple[str, str]
) -> None:
    del stack.answers["DescribeEndpoint"]

    answer = manage("DELETE", "/models/abalone")

    assert answer["status"] == 202
    assert stack.requests("DeleteEndpoint") == [{"EndpointName": "xgbp-abalone"}]
    predicted = api("POST", "/models/abalone/predictions", json.dumps({"instances": [[1] * 8]}))
    assert predicted["status"] == 404
    assert "its endpoint xgbp-abalone was deleted on request" in predicted["body"]["message"]
    assert manage("GET", "/models/abalone/versions")["body"]["live_version"] is None


def test_only_endpoints_without_invocations_for_the_idle_time_are_deleted(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDLE_ENDPOINT_HOURS", "2")
    for model in ("busy", "quiet"):
        deploy(stack, model, abalone_like(30, seed=1), PERFECT_OUTPUT)
    later = datetime.now(UTC) + timedelta(hours=3)
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": "xgbp-busy"},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Timestamp": later - timedelta(minutes=30),
                "Value": 4.0,
            }
        ],
    )

    outcomes = retire_idle(Settings.from_env(), at=later)

    assert {(o.model, o.action) for o in outcomes} == {("busy", "kept"), ("quiet", "deleted")}
    assert stack.requests("DeleteEndpoint") == [{"EndpointName": "xgbp-quiet"}]
    retired = stack.run("quiet", "_model")["retired"]
    assert (
        retired["reason"] == "its endpoint xgbp-quiet was deleted after 2 hours without invocations"
    )
    (young,) = retire_idle(Settings.from_env(), at=datetime.now(UTC))
    assert (young.model, young.action, young.detail) == (
        "busy",
        "kept",
        "serving for less than the idle time",
    )


def test_a_rollback_is_refused_while_the_endpoint_is_not_in_service(
    stack: Stack, two_versions: tuple[str, str]
) -> None:
    stack.answers["DescribeEndpoint"] = endpoint_answer("Failed", job("abalone", two_versions[1]))

    answer = manage("POST", "/models/abalone/rollback")

    assert answer["status"] == 409
    assert "is Failed" in answer["body"]["message"]
    model = stack.run("abalone", "_model")
    assert "deploying_run_id" not in model
    assert "rollback" not in model


def test_a_rollback_whose_event_never_came_is_settled_by_the_reconciler(
    stack: Stack, two_versions: tuple[str, str]
) -> None:
    first, second = two_versions
    assert manage("POST", "/models/abalone/rollback")["status"] == 202
    # The update was never made (say the function died): the endpoint still serves the second.
    later = datetime.now(UTC) + STALE_AFTER + timedelta(minutes=1)

    (outcome,) = reconcile(Settings.from_env(), at=later)

    assert outcome.action == "rollback_failed"
    model = stack.run("abalone", "_model")
    assert model["live"]["run_id"] == second
    assert "deploying_run_id" not in model
    (notice,) = stack.notifications()
    assert (notice["run_id"], notice["status"]) == (first, "rollback_failed")


def test_a_rollback_announcement_that_failed_is_sent_by_the_reconciler(
    stack: Stack, two_versions: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = two_versions
    assert manage("POST", "/models/abalone/rollback")["status"] == 202
    stack.answers["DescribeEndpoint"] = endpoint_answer("InService", job("abalone", first))

    def sns_down(*_: Any) -> None:
        raise RuntimeError("SNS is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(endpoint_tracking, "notify", sns_down)
        with pytest.raises(RuntimeError, match="SNS is unreachable"):
            endpoint_changed("abalone", job("abalone", first), "IN_SERVICE")
    # The rollback is recorded with its notice, which nothing has sent yet
    assert stack.run("abalone", "_model")["live"]["run_id"] == first
    assert stack.run("abalone", "_model")["pending_notice"]["status"] == "rolled_back"
    assert stack.notifications() == []

    (outcome,) = reconcile(Settings.from_env(), at=datetime.now(UTC) + STALE_AFTER * 2)

    assert outcome.action == "announced"
    (notice,) = stack.notifications()
    assert (notice["run_id"], notice["status"]) == (first, "rolled_back")
    assert "pending_notice" not in stack.run("abalone", "_model")
