"""reconcile_runs with moto: runs whose next event never came are settled from Describe*."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from pipeline_common.config import Settings
from pipeline_common.reconciliation import STALE_AFTER, reconcile

from functions.reconcile_runs.handler import lambda_handler
from functions.start_training.handler import lambda_handler as start_training
from tests.helpers import load_event
from tests.integration.conftest import Stack, abalone_like, s3_event
from tests.integration.flow import (
    CONTEXT,
    PERFECT_OUTPUT,
    endpoint_answer,
    job,
    start,
    training_changed,
    transform_changed,
    write_transform_output,
)


def later() -> datetime:
    """A moment when every run made so far has gone stale."""
    return datetime.now(UTC) + STALE_AFTER + timedelta(minutes=1)


def test_a_training_job_whose_event_was_lost_moves_on_to_the_transform(stack: Stack) -> None:
    # Given a run whose training job completed (moto completes jobs at once) but no event came
    run_id = start(stack, "abalone", abalone_like(30))

    # When the reconciler runs after the run went stale
    (outcome,) = reconcile(Settings.from_env(), at=later())

    # Then the run continues as the event would have made it
    assert (outcome.action, outcome.run_id) == ("transform_started", run_id)
    assert len(stack.requests("CreateTransformJob")) == 1
    assert stack.run("abalone", run_id)["stage"] == "transforming"


def test_fresh_runs_are_left_alone(stack: Stack) -> None:
    start(stack, "abalone", abalone_like(30))

    result = lambda_handler(load_event("reconcile_runs.json"), CONTEXT)

    assert result == {"outcomes": []}
    assert stack.requests("CreateTransformJob") == []


def test_a_run_whose_job_was_never_created_gets_it_now(stack: Stack) -> None:
    # Given a run recorded as training whose CreateTrainingJob was throttled past every retry
    stack.answers["CreateTrainingJob"] = lambda _: (
        400,
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
    )
    keys = stack.drop("abalone", abalone_like(30))
    with pytest.raises(ClientError, match="ThrottlingException"):
        start_training(s3_event(keys[-1:]), CONTEXT)
    (run,) = stack.runs("abalone")
    assert run["stage"] == "training"
    del stack.answers["CreateTrainingJob"]

    # When the reconciler finds it stale
    (outcome,) = reconcile(Settings.from_env(), at=later())

    # Then the job is created, as the first attempt would have
    assert (outcome.action, outcome.run_id) == ("training_started", run["run_id"])
    requests = stack.requests("CreateTrainingJob")
    first, again = requests  # (a scripted answer skips botocore's retries)
    assert again == first
    assert stack.notifications() == []


def test_a_transform_never_created_is_created_by_the_reconciler(stack: Stack) -> None:
    # Given a run recorded as transforming whose CreateTransformJob failed past every retry
    run_id = start(stack, "abalone", abalone_like(30))
    stack.answers["CreateTransformJob"] = lambda _: (
        500,
        {"Error": {"Code": "InternalFailure", "Message": "try again"}},
    )
    with pytest.raises(ClientError, match="InternalFailure"):
        training_changed("abalone", run_id, "Completed")
    assert stack.run("abalone", run_id)["stage"] == "transforming"
    del stack.answers["CreateTransformJob"]

    (outcome,) = reconcile(Settings.from_env(), at=later())

    assert (outcome.action, outcome.run_id) == ("transform_started", run_id)
    assert stack.requests("CreateTransformJob")[-1]["TransformJobName"] == job("abalone", run_id)


def test_a_run_stuck_in_validation_fails_with_a_reason(stack: Stack) -> None:
    # Given a run a crashed invocation left in validation
    stack.table.put_item(
        Item={
            "model": "abalone",
            "run_id": "0123456789ab",
            "stage": "validating",
            "status": "in_progress",
            "updated_at": "2026-01-01T00:00:00.000Z",
        }
    )

    (outcome,) = reconcile(Settings.from_env(), at=later())

    assert outcome.action == "failed"
    assert "validating step did not finish" in outcome.detail
    assert stack.run("abalone", "0123456789ab")["status"] == "failed"


def test_a_deployment_whose_event_was_lost_goes_live(stack: Stack) -> None:

    run_id = start(stack, "abalone", abalone_like(30))
    training_changed("abalone", run_id, "Completed")
    write_transform_output(stack, "abalone", run_id, PERFECT_OUTPUT)
    transform_changed("abalone", run_id, "Completed")

    (outcome,) = reconcile(Settings.from_env(), at=later())

    assert outcome.action == "deployed"
    assert stack.run("abalone", "_model")["live"]["endpoint_config"] == job("abalone", run_id)


def test_an_ended_run_never_announced_is_announced_once(stack: Stack) -> None:
    # Given a run that ended while SNS was down: recorded, but not announced
    run_id = start(stack, "abalone", abalone_like(30))
    stack.table.update_item(
        Key={"model": "abalone", "run_id": run_id},
        UpdateExpression="SET #s = :failed, reason = :r, stage = :done, updated_at = :old",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":failed": "failed",
            ":r": "training failed: boom",
            ":done": "done",
            ":old": "2026-01-01T00:00:00.000Z",
        },
    )

    first = reconcile(Settings.from_env(), at=later())
    second = reconcile(Settings.from_env(), at=later())

    assert [o.action for o in first] == ["failed"]
    assert second == []
    (notification,) = stack.notifications()
    assert notification["reason"] == "training failed: boom"


def test_a_deployment_the_endpoint_never_took_fails_and_frees_the_endpoint(stack: Stack) -> None:

    # Given a run deploying to an endpoint that stays on another config (rolled back, or the
    # function died before it asked for the update)
    run_id = start(stack, "abalone", abalone_like(30))
    training_changed("abalone", run_id, "Completed")
    write_transform_output(stack, "abalone", run_id, PERFECT_OUTPUT)
    transform_changed("abalone", run_id, "Completed")
    stack.answers["DescribeEndpoint"] = endpoint_answer("InService", "xgbp-abalone-000000000000")

    (outcome,) = reconcile(Settings.from_env(), at=later())

    assert outcome.action == "failed"
    assert "rolled back or was never made" in outcome.detail
    assert "deploying_run_id" not in stack.run("abalone", "_model")


def test_a_second_delivery_during_the_announcement_sends_nothing(stack: Stack) -> None:

    run_id = start(stack, "abalone", abalone_like(30))
    # Given another invocation is announcing the run's end right now
    stack.table.update_item(
        Key={"model": "abalone", "run_id": run_id},
        UpdateExpression="SET #s = :failed, stage = :done, notifying_at = :now",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":failed": "failed",
            ":done": "done",
            ":now": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    )

    outcome = training_changed("abalone", run_id, "Failed", FailureReason="boom")

    assert outcome["action"] == "duplicate"
    assert stack.notifications() == []


def test_an_event_for_an_unknown_run_records_nothing(stack: Stack) -> None:

    outcome = training_changed("abalone", "0123456789ab", "Failed", FailureReason="boom")

    assert outcome["action"] == "ignored"
    assert stack.runs("abalone") == []
    assert stack.notifications() == []
