"""deploy_model and track_endpoint with moto: score, gate, create or update, and go live."""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from typing import Any

import boto3
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

from functions.deploy_model.handler import lambda_handler as deploy_model_handler
from tests.integration.conftest import BUCKET, REGION, Stack, abalone_like, eventbridge_event
from tests.integration.flow import (
    CONTEXT,
    deploy,
    endpoint_answer,
    endpoint_changed,
    job,
    start,
    training_changed,
    transform_changed,
    write_transform_output,
)


def joined_rows(labels: list[float], predictions: list[float], width: int = 8) -> list[str]:
    """The batch transform's joined output: the test row as sent, then the prediction."""
    return [
        ",".join([repr(label), *(["0.5"] * width), repr(prediction)])
        for label, prediction in zip(labels, predictions, strict=True)
    ]


def regression_output(noise: float, rows: int = 200, seed: int = 3) -> tuple[list[float], ...]:
    generator = random.Random(seed)
    labels = [float(generator.randint(1, 25)) for _ in range(rows)]
    predictions = [label + generator.gauss(0, noise) for label in labels]
    return labels, predictions


def transformed(stack: Stack, model: str = "abalone") -> str:
    run_id = start(stack, model, abalone_like(30))
    training_changed(model, run_id, "Completed")
    return run_id


def test_metrics_equal_scikit_learn_and_the_first_model_gets_anendpoint_answer(
    stack: Stack,
) -> None:
    # Given a finished batch transform with known labels and predictions
    run_id = transformed(stack)
    labels, predictions = regression_output(noise=2.0)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, predictions))

    # When its state change arrives
    outcome = transform_changed("abalone", run_id, "Completed")

    # Then the metrics are scikit-learn's, stored in the run and beside its artifacts
    expected = {
        "rmse": math.sqrt(mean_squared_error(labels, predictions)),
        "mae": mean_absolute_error(labels, predictions),
        "r2": r2_score(labels, predictions),
    }
    assert outcome["action"] == "endpoint_created"
    stored = json.loads(
        stack.s3.get_object(Bucket=BUCKET, Key=f"runs/abalone/{run_id}/metrics.json")["Body"].read()
    )
    run = stack.run("abalone", run_id)
    for name, value in expected.items():
        assert stored["metrics"][name] == pytest.approx(value, abs=1e-9)
        assert float(run["metrics"][name]) == pytest.approx(value, abs=1e-9)
    assert stored["gate"]["passed"] is True
    # And the endpoint is created from a new config of the serverless kind
    name = job("abalone", run_id)
    (config,) = stack.requests("CreateEndpointConfig")
    assert config["EndpointConfigName"] == name
    assert config["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName": name,
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
        }
    ]
    (endpoint,) = stack.requests("CreateEndpoint")
    assert (endpoint["EndpointName"], endpoint["EndpointConfigName"]) == ("xgbp-abalone", name)
    assert stack.requests("UpdateEndpoint") == []
    assert (run["stage"], run["status"]) == ("deploying", "in_progress")


def test_binary_metrics_equal_scikit_learn(stack: Stack) -> None:
    generator = random.Random(11)
    rows = [f"{i % 2},{generator.random()},{generator.random()}" for i in range(40)]
    files = {
        "train.csv": "\n".join(rows) + "\n",
        "validation.csv": "\n".join(rows[:10]) + "\n",
        "test.csv": "\n".join(rows[:10]) + "\n",
        "hyperparameters.json": '{"objective": "binary:logistic"}',
    }
    run_id = start(stack, "churn", files)
    training_changed("churn", run_id, "Completed")
    labels = [float(generator.randint(0, 1)) for _ in range(300)]
    # Rounded scores make ties, which AUC must count as scikit-learn does.
    scores = [
        round(min(max(label * 0.3 + generator.random() * 0.7, 0.0), 1.0), 2) for label in labels
    ]
    write_transform_output(stack, "churn", run_id, joined_rows(labels, scores, width=2))

    transform_changed("churn", run_id, "Completed")

    metrics = stack.run("churn", run_id)["metrics"]
    assert float(metrics["auc"]) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)


def test_a_worse_model_is_rejected_and_the_live_one_stays(stack: Stack) -> None:
    # Given a live model with RMSE about 1
    labels, good = regression_output(noise=1.0)
    live = deploy(stack, "abalone", abalone_like(30, seed=1), joined_rows(labels, good))
    stack.notifications()
    # And a challenger that scores worse on its test set
    run_id = transformed(stack)
    _, bad = regression_output(noise=3.0)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, bad))

    outcome = transform_changed("abalone", run_id, "Completed")

    # Then it is rejected with the numbers, announced, and no endpoint call is made
    assert outcome["action"] == "rejected"
    assert "live" in outcome["detail"]
    run = stack.run("abalone", run_id)
    assert run["status"] == "rejected"
    assert run["gate"]["passed"] is False
    assert len(stack.requests("CreateEndpoint")) == 1
    assert stack.requests("UpdateEndpoint") == []
    model = stack.run("abalone", "_model")
    assert model["live"]["run_id"] == live
    (notification,) = stack.notifications()
    assert notification["status"] == "rejected"
    assert float(notification["metrics"]["rmse"]) > 2


def test_a_better_model_updates_the_endpoint_and_goes_live(stack: Stack) -> None:
    labels, fair = regression_output(noise=2.0)
    first = deploy(stack, "abalone", abalone_like(30, seed=1), joined_rows(labels, fair))
    stack.answers["UpdateEndpoint"] = _ok_update
    run_id = transformed(stack)
    _, better = regression_output(noise=0.5)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, better))

    outcome = transform_changed("abalone", run_id, "Completed")

    assert outcome["action"] == "endpoint_updated"
    (update,) = stack.requests("UpdateEndpoint")
    assert update == {"EndpointName": "xgbp-abalone", "EndpointConfigName": job("abalone", run_id)}
    # The old model stays live while the endpoint updates, even if an old event arrives late
    stack.answers["DescribeEndpoint"] = endpoint_answer("Updating", job("abalone", first))
    late = endpoint_changed("abalone", job("abalone", first), "IN_SERVICE")
    assert late["action"] == "ignored"
    assert stack.run("abalone", "_model")["live"]["run_id"] == first

    stack.answers["DescribeEndpoint"] = endpoint_answer("InService", job("abalone", run_id))
    endpoint_changed("abalone", job("abalone", run_id), "IN_SERVICE")

    live = stack.run("abalone", "_model")["live"]
    assert (live["run_id"], live["num_features"]) == (run_id, 8)
    assert stack.run("abalone", run_id)["status"] == "deployed"


def test_an_instance_endpoint_updates_blue_green_under_rollback_alarms(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "ENDPOINT_KIND": "instance",
        "DEPLOYMENT_TRAFFIC": "CANARY",
        "CANARY_PERCENT": "20",
        "BAKE_SECONDS": "600",
    }.items():
        monkeypatch.setenv(name, value)
    labels, fair = regression_output(noise=2.0)
    deploy(stack, "abalone", abalone_like(30, seed=1), joined_rows(labels, fair))
    stack.answers["UpdateEndpoint"] = _ok_update
    run_id = transformed(stack)
    _, better = regression_output(noise=0.5)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, better))

    assert transform_changed("abalone", run_id, "Completed")["action"] == "endpoint_updated"

    (update,) = stack.requests("UpdateEndpoint")
    assert update == {
        "EndpointName": "xgbp-abalone",
        "EndpointConfigName": job("abalone", run_id),
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "WaitIntervalInSeconds": 600,
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                },
                "TerminationWaitInSeconds": 0,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [
                    {"AlarmName": "xgbp-abalone-5xx-errors"},
                    {"AlarmName": "xgbp-abalone-model-errors"},
                ]
            },
        },
    }
    alarms = boto3.client("cloudwatch", region_name=REGION).describe_alarms(
        AlarmNamePrefix="xgbp-abalone-"
    )["MetricAlarms"]
    expected = {
        "xgbp-abalone-5xx-errors": "Invocation5XXErrors",
        "xgbp-abalone-model-errors": "InvocationModelErrors",
    }
    assert {alarm["AlarmName"]: alarm["MetricName"] for alarm in alarms} == expected
    for alarm in alarms:
        assert {
            key: alarm[key]
            for key in (
                "Namespace",
                "Dimensions",
                "Statistic",
                "Period",
                "EvaluationPeriods",
                "Threshold",
                "ComparisonOperator",
                "TreatMissingData",
            )
        } == {
            "Namespace": "AWS/SageMaker",
            "Dimensions": [
                {"Name": "EndpointName", "Value": "xgbp-abalone"},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        }


def test_threshold_rejects_a_model_that_misses_the_bar(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATE_THRESHOLD", "1.5")
    run_id = transformed(stack)
    labels, predictions = regression_output(noise=2.0)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, predictions))

    outcome = transform_changed("abalone", run_id, "Completed")

    assert outcome["action"] == "rejected"
    assert "1.5" in outcome["detail"]
    assert stack.requests("CreateEndpointConfig") == []


@pytest.mark.parametrize(
    ("bars", "passed", "reason"),
    [
        # A bar on another metric than the primary one, missed.
        ({"r2": 0.999}, False, "misses the bar of 0.999 (the least required) in pipeline.json"),
        # pipeline.json's bar on the primary metric replaces the stack's GateThreshold of 1.5.
        ({"rmse": 5.0, "mae": 4.0}, True, "meets the threshold 5"),
    ],
)
def test_pipeline_json_sets_the_models_own_bars(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    bars: dict[str, float],
    passed: bool,
    reason: str,
) -> None:
    monkeypatch.setenv("GATE_THRESHOLD", "1.5")
    files = {**abalone_like(30), "pipeline.json": json.dumps({"gate": bars})}
    run_id = start(stack, "abalone", files)
    training_changed("abalone", run_id, "Completed")
    labels, predictions = regression_output(noise=2.0)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, predictions))

    outcome = transform_changed("abalone", run_id, "Completed")

    run = stack.run("abalone", run_id)
    assert run["gate_bars"] == {k: Decimal(str(v)) for k, v in bars.items()}
    assert run["gate"]["passed"] is passed
    assert reason in run["gate"]["reason"]
    assert outcome["action"] == ("endpoint_created" if passed else "rejected")


def test_unreadable_output_fails_the_run_and_deploys_nothing(stack: Stack) -> None:
    run_id = transformed(stack)
    write_transform_output(stack, "abalone", run_id, ["1,2,not-a-number"])

    outcome = transform_changed("abalone", run_id, "Completed")

    assert outcome["action"] == "failed"
    assert outcome["detail"].startswith("evaluation failed:")
    assert stack.requests("CreateEndpointConfig") == []


def test_failed_transform_is_reported(stack: Stack) -> None:
    run_id = transformed(stack)

    outcome = transform_changed("abalone", run_id, "Failed", FailureReason="ClientError: boom")

    assert outcome["action"] == "failed"
    (notification,) = stack.notifications()
    assert "boom" in notification["reason"]


def test_duplicate_transform_events_deploy_once(stack: Stack) -> None:
    run_id = transformed(stack)
    labels, predictions = regression_output(noise=1.0)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, predictions))

    outcomes = [transform_changed("abalone", run_id, "Completed")["action"] for _ in range(2)]

    # The second finds the deployment recorded and under way, and leaves it be.
    assert outcomes == ["endpoint_created", "endpoint_changing"]
    assert len(stack.requests("CreateEndpoint")) == 1


def test_endpoint_in_service_makes_the_run_live_once(stack: Stack) -> None:
    labels, predictions = regression_output(noise=1.0)
    run_id = deploy(stack, "abalone", abalone_like(30), joined_rows(labels, predictions))
    stack.notifications()

    again = endpoint_changed("abalone", job("abalone", run_id), "IN_SERVICE")

    assert again["action"] in {"ignored", "duplicate"}
    assert stack.notifications() == []
    run = stack.run("abalone", run_id)
    assert (run["status"], run["reason"]) == ("deployed", "serving on endpoint xgbp-abalone")


def test_failed_endpoint_fails_the_run_and_keeps_nothing_live(stack: Stack) -> None:
    run_id = transformed(stack)
    labels, predictions = regression_output(noise=1.0)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, predictions))
    transform_changed("abalone", run_id, "Completed")
    stack.answers["DescribeEndpoint"] = endpoint_answer(
        "Failed", job("abalone", run_id), FailureReason="model artifact could not be loaded"
    )

    outcome = endpoint_changed("abalone", job("abalone", run_id), "FAILED")

    assert outcome["action"] == "failed"
    assert outcome["detail"] == (
        "deployment failed: model artifact could not be loaded; endpoint xgbp-abalone was "
        "deleted and the next drop creates it anew"
    )
    (deleted,) = stack.requests("DeleteEndpoint")
    assert deleted == {"EndpointName": "xgbp-abalone"}
    model = stack.run("abalone", "_model")
    assert "live" not in model
    assert "deploying_run_id" not in model


def test_a_rolled_back_update_fails_the_run_and_keeps_the_old_model(stack: Stack) -> None:
    labels, fair = regression_output(noise=2.0)
    first = deploy(stack, "abalone", abalone_like(30, seed=1), joined_rows(labels, fair))
    stack.answers["UpdateEndpoint"] = _ok_update
    run_id = transformed(stack)
    _, better = regression_output(noise=0.5)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, better))
    transform_changed("abalone", run_id, "Completed")
    stack.answers["DescribeEndpoint"] = endpoint_answer(
        "InService", job("abalone", first), FailureReason="alarm fired: rolled back"
    )

    outcome = endpoint_changed("abalone", job("abalone", first), "IN_SERVICE")

    assert (outcome["action"], outcome["detail"]) == (
        "failed",
        "deployment failed: alarm fired: rolled back",
    )
    assert stack.run("abalone", "_model")["live"]["run_id"] == first


def test_a_run_waits_while_another_deploys_then_follows_it(stack: Stack) -> None:
    # Given a first run whose endpoint is being created
    labels, fair = regression_output(noise=2.0)
    first = start(stack, "abalone", abalone_like(30, seed=1))
    training_changed("abalone", first, "Completed")
    write_transform_output(stack, "abalone", first, joined_rows(labels, fair))
    transform_changed("abalone", first, "Completed")
    # And a second run whose batch transform finishes meanwhile
    second = transformed(stack)
    _, better = regression_output(noise=1.0)
    write_transform_output(stack, "abalone", second, joined_rows(labels, better))

    waiting = transform_changed("abalone", second, "Completed")

    # Then the second run waits, untouched, for the first deployment to settle
    assert waiting["action"] == "waiting"
    assert f"run {first} is still deploying" in waiting["detail"]
    assert stack.run("abalone", second)["stage"] == "transforming"
    assert len(stack.requests("CreateEndpointConfig")) == 1

    # When the first goes live, the second is scored against it and deployed after it
    stack.answers["UpdateEndpoint"] = _ok_update
    endpoint_changed("abalone", job("abalone", first), "IN_SERVICE")

    assert stack.run("abalone", first)["status"] == "deployed"
    (update,) = stack.requests("UpdateEndpoint")
    assert update["EndpointConfigName"] == job("abalone", second)
    second_run = stack.run("abalone", second)
    assert (second_run["stage"], second_run["gate"]["live_run_id"]) == ("deploying", first)


def _ok_update(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{params['EndpointName']}"
    return 200, {"EndpointArn": arn}


def test_a_challenger_is_also_scored_on_the_live_models_own_test_set(stack: Stack) -> None:
    # Given a live model, and a challenger whose training just completed
    labels, fair = regression_output(noise=2.0)
    first = deploy(stack, "abalone", abalone_like(30, seed=1), joined_rows(labels, fair))
    run_id = transformed(stack)

    # Then it is scored twice: on its own test set and on the live model's
    own, on_live = stack.requests("CreateTransformJob")[-2:]
    assert on_live["TransformJobName"] == f"{job('abalone', run_id)}-on-live"
    assert on_live["ModelName"] == own["ModelName"] == job("abalone", run_id)
    assert on_live["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{BUCKET}/runs/abalone/{first}/input/test.csv"
    )
    assert on_live["TransformOutput"]["S3OutputPath"] == (
        f"s3://{BUCKET}/runs/abalone/{run_id}/transform-on-live"
    )
    assert stack.run("abalone", run_id)["live_test_set"] == {
        "run_id": first,
        "transform_job": on_live["TransformJobName"],
    }

    # When its own transform completes first, it waits for the other
    _, better = regression_output(noise=0.5)
    _, worse = regression_output(noise=3.0)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, better))
    stack.answers["DescribeTransformJob"] = lambda _: (200, {"TransformJobStatus": "InProgress"})
    waiting = transform_changed("abalone", run_id, "Completed")
    assert (waiting["action"], waiting["detail"]) == (
        "waiting",
        f"{on_live['TransformJobName']} has not completed yet",
    )

    # And when both are done, better on its own test set but worse on the champion's: rejected
    write_transform_output(
        stack, "abalone", run_id, joined_rows(labels, better), joined_rows(labels, worse)
    )
    del stack.answers["DescribeTransformJob"]
    event = eventbridge_event(
        "deploy_model.json",
        {"TransformJobName": on_live["TransformJobName"], "TransformJobStatus": "Completed"},
    )
    outcome = deploy_model_handler(event, CONTEXT)

    assert outcome["action"] == "rejected"
    assert outcome["detail"].startswith("On the live model's own test set, rmse ")
    gate = stack.run("abalone", run_id)["gate"]
    assert gate["on_live_test_set"]["run_id"] == first
    assert gate["on_live_test_set"]["value"] > gate["on_live_test_set"]["live_value"]
    assert gate["value"] < gate["live_value"]  # better on its own test set
    assert stack.run("abalone", "_model")["live"]["run_id"] == first


def test_an_update_another_delivery_already_started_is_not_a_failure(stack: Stack) -> None:
    # Given a live model, and a better run whose update a racing delivery made first
    labels, fair = regression_output(noise=2.0)
    deploy(stack, "abalone", abalone_like(30, seed=1), joined_rows(labels, fair))
    run_id = transformed(stack)
    _, better = regression_output(noise=0.5)
    write_transform_output(stack, "abalone", run_id, joined_rows(labels, better))
    message = 'Cannot update in-progress endpoint "arn:aws:sagemaker:us-east-1:1:endpoint/x".'
    stack.answers["UpdateEndpoint"] = lambda _: (
        400,
        {"Error": {"Code": "ValidationException", "Message": message}},
    )

    outcome = transform_changed("abalone", run_id, "Completed")

    # Then the run keeps deploying: the endpoint's event settles it
    assert outcome["action"] == "endpoint_changing"
    run = stack.run("abalone", run_id)
    assert (run["stage"], run["status"]) == ("deploying", "in_progress")
