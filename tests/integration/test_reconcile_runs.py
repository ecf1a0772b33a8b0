"""reconcile_runs with moto: runs whose next event never came are settled from Describe*."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline_common.config import Settings
from pipeline_common.reconciliation import reconcile

from functions.reconcile_runs.handler import lambda_handler
from tests.helpers import load_event
from tests.integration.conftest import Stack, abalone_like
from tests.integration.flow import CONTEXT, job, start


def later() -> datetime:
    """A moment when every run made so far has gone stale."""
    return datetime.now(UTC) + timedelta(minutes=11)


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


def test_a_run_whose_job_was_never_created_fails_and_is_announced(stack: Stack) -> None:
    run_id = start(stack, "abalone", abalone_like(30))
    stack.answers["DescribeTrainingJob"] = lambda _: (
        400,
        {"Error": {"Code": "ValidationException", "Message": "Requested resource not found."}},
    )

    (outcome,) = reconcile(Settings.from_env(), at=later())

    assert (outcome.action, outcome.detail) == ("failed", "its training job was never created")
    (notification,) = stack.notifications()
    assert notification["run_id"] == run_id


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
    from tests.integration.flow import training_changed, transform_changed, write_transform_output

    run_id = start(stack, "abalone", abalone_like(30))
    training_changed("abalone", run_id, "Completed")
    write_transform_output(
        stack, "abalone", run_id, [f"{v},{','.join(['1'] * 8)},{v}" for v in range(9)]
    )
    transform_changed("abalone", run_id, "Completed")

    (outcome,) = reconcile(Settings.from_env(), at=later())

    assert outcome.action == "deployed"
    assert stack.run("abalone", "_model")["live"]["endpoint_config"] == job("abalone", run_id)
