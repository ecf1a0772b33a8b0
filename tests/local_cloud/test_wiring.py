"""The wiring read from the real template.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from xgbpipe.local.cloud import schedule_period, scheduled_event
from xgbpipe.local.wiring import Wiring, WiringError, load_wiring

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def wiring() -> Wiring:
    return load_wiring(TEMPLATE, {"GateThreshold": "3.0"})


def test_bucket_notifies_start_training_for_datasets(wiring: Wiring) -> None:
    (bucket,) = wiring.buckets
    assert bucket.name == "xgbpipe-local-data-123456789012-us-east-1"
    (notification,) = bucket.notifications
    assert notification.function == "StartTrainingFunction"
    assert notification.events == ("s3:ObjectCreated:*",)
    assert notification.key_filters == (("prefix", "datasets/"),)


def test_table_keeps_the_template_key_schema(wiring: Wiring) -> None:
    (table,) = wiring.tables
    assert table.name == "xgbpipe-local-RunsTable"
    assert table.key_schema == (
        {"AttributeName": "model", "KeyType": "HASH"},
        {"AttributeName": "run_id", "KeyType": "RANGE"},
    )


def test_topic_and_failed_events_queue(wiring: Wiring) -> None:
    assert [t.arn for t in wiring.topics] == [
        "arn:aws:sns:us-east-1:123456789012:xgbpipe-local-NotificationTopic"
    ]
    assert wiring.queue("FailedEventsQueue").name == "xgbpipe-local-FailedEventsQueue"


def test_rules_keep_the_template_patterns_with_the_job_prefix(wiring: Wiring) -> None:
    rules = {rule.function: rule.event_pattern for rule in wiring.rules}
    assert rules == {
        "RunBatchTransformFunction": {
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Training Job State Change"],
            "detail": {
                "TrainingJobName": [{"prefix": "xgbp-"}],
                "TrainingJobStatus": ["Completed", "Failed", "Stopped"],
            },
        },
        "DeployModelFunction": {
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Transform Job State Change"],
            "detail": {
                "TransformJobName": [{"prefix": "xgbp-"}],
                "TransformJobStatus": ["Completed", "Failed", "Stopped"],
            },
        },
        "TrackEndpointFunction": {
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Endpoint State Change"],
            "detail": {"EndpointName": [{"prefix": "xgbp-"}]},
        },
        "ReconcileRunsFunction": None,
        "RetireIdleEndpointsFunction": None,
    }


def test_the_reconciler_runs_on_the_templates_schedule(wiring: Wiring) -> None:
    schedules = {
        rule.function: (rule.schedule_expression, rule.enabled)
        for rule in wiring.rules
        if rule.schedule_expression
    }
    # The idle endpoints' check is off until IdleEndpointHours is set.
    assert schedules == {
        "ReconcileRunsFunction": ("rate(15 minutes)", True),
        "RetireIdleEndpointsFunction": ("rate(1 hour)", False),
    }
    (rule,) = [rule for rule in wiring.rules if rule.function == "ReconcileRunsFunction"]
    assert schedule_period(str(rule.schedule_expression)) == 900
    event = scheduled_event(wiring, rule)
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "aws.events",
        "Scheduled Event",
        {},
    )
    assert event["resources"] == [f"arn:aws:events:us-east-1:123456789012:rule/{rule.name}"]


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        ("cron(0 12 * * ? *)", None),
    ],
)
def test_schedule_periods(expression: str, seconds: int | None) -> None:
    assert schedule_period(expression) == seconds


def test_environment_resolves_to_the_local_names(wiring: Wiring) -> None:
    environment = wiring.function("StartTrainingFunction").environment
    assert environment["DATA_BUCKET"] == wiring.buckets[0].name
    assert environment["RUNS_TABLE"] == wiring.tables[0].name
    assert environment["TOPIC_ARN"] == wiring.topics[0].arn
    assert environment["JOB_PREFIX"] == "xgbp"
    assert environment["GATE_THRESHOLD"] == "3.0"
    assert (
        environment["SAGEMAKER_ROLE_ARN"]
        == "arn:aws:iam::123456789012:role/xgbpipe-local-SageMakerExecutionRole"
    )
    assert environment["XGBOOST_IMAGE_URI"] == (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"
    )


def test_functions_have_their_code_layers_timeouts_and_retries(wiring: Wiring) -> None:
    start_training = wiring.function("start_training")
    assert start_training.code_dir == ROOT / "functions" / "start_training"
    assert start_training.handler == "handler.lambda_handler"
    assert start_training.layer_dirs == (ROOT / "layers" / "pipeline_common",)
    assert (start_training.timeout, start_training.memory_mb) == (900, 1769)
    assert start_training.max_retry_attempts == 2
    assert start_training.on_failure_queue == "FailedEventsQueue"
    predict = wiring.function("PredictFunction")
    assert (predict.timeout, predict.memory_mb) == (29, 512)


def test_api_routes_require_the_key_on_stage_v1(wiring: Wiring) -> None:
    routes = {(route.method, route.path): route for route in wiring.routes}
    assert {route: routes[route].function for route in routes} == {
        ("GET", "/models/{model}"): "PredictFunction",
        ("POST", "/models/{model}/predictions"): "PredictFunction",
        ("GET", "/models/{model}/versions"): "ManageModelsFunction",
        ("POST", "/models/{model}/rollback"): "ManageModelsFunction",
        ("DELETE", "/models/{model}"): "ManageModelsFunction",
    }
    for route in routes.values():
        assert route.api_key_required
        assert route.stage == "v1"


def test_parameter_overrides_change_the_patterns() -> None:
    wiring = load_wiring(TEMPLATE, {"JobPrefix": "demo"})
    patterns = [rule.event_pattern["detail"] for rule in wiring.rules if rule.event_pattern]
    assert len(patterns) == 3
    assert all([{"prefix": "demo-"}] in detail.values() for detail in patterns)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"NoSuchParameter": "1"}, "unknown parameter"),
        ({"EndpointKind": "gpu"}, "is not one of"),
        ({"GateThreshold": "high"}, "does not match"),
    ],
)
def test_bad_overrides_say_what_to_fix(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(WiringError, match=message):
        load_wiring(TEMPLATE, overrides)


def test_unknown_function_lists_the_known_ones(wiring: Wiring) -> None:
    with pytest.raises(WiringError, match="PredictFunction \\(predict\\)"):
        wiring.function("train")
