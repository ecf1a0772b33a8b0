"""Faults injected into the local cloud while the whole chain runs (xgbpipe.local.faults).

After each fault: the run's record says what happened, the notification went out, the model
already live still serves the same predictions, nothing waits in the dead-letter queue unless
expected, and a new valid drop of the same model deploys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_client import assert_one_line_error, xgbpipe
from xgbpipe.client import StackError
from xgbpipe.local.faults import Fault
from xgbpipe.local.runner import Attempt

pytestmark = pytest.mark.e2e

WEAK = {"num_round": "3", "max_depth": "2", "eta": "0.3"}
CHAMPION = "champion"


class Inbox:
    """Every notification the module's cloud sent, read once from the topic's queue."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self.seen: list[dict[str, Any]] = []

    def new(self) -> list[dict[str, Any]]:
        """The notifications sent since the last read."""
        received = self._stack.notifications()
        self.seen.extend(received)
        return received

    def of(self, model: str, run_id: str) -> list[dict[str, Any]]:
        self.new()
        return [n for n in self.seen if (n["model"], n["run_id"]) == (model, run_id)]


@pytest.fixture(scope="module")
def inbox(stack: Stack) -> Inbox:
    return Inbox(stack)


@pytest.fixture(scope="module")
def test_rows(abalone_files: dict[str, str]) -> list[list[float]]:
    rows = [[float(v) for v in line.split(",")] for line in abalone_files["test.csv"].split()]
    return [row[1:] for row in rows[:50]]


@pytest.fixture(scope="module")
def champion(stack: Stack, abalone_files: dict[str, str], test_rows: list[list[float]]) -> Any:
    """A weak model, live before any fault, with the predictions it must keep giving."""
    stack.drop(CHAMPION, {"hyperparameters.json": json.dumps(WEAK), **abalone_files})
    run = stack.wait_for_run(CHAMPION)["latest_run"]
    assert run["status"] == "deployed", run
    return run["run_id"], stack.api.predict(CHAMPION, test_rows)["predictions"]


@pytest.fixture(autouse=True)
def no_fault_left(stack: Stack) -> Iterator[None]:
    yield
    left = [fault for fault in stack.cloud.faults.armed() if fault.fired < fault.times]
    stack.cloud.faults.clear()
    assert not left, f"faults armed but never fired: {left}"


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    url = stack.cloud.queue_urls["FailedEventsQueue"]
    messages = stack.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def runs_table(stack: Stack) -> list[dict[str, Any]]:
    items = stack.client("dynamodb").scan(
        TableName=stack.cloud.environment()["XGBPIPE_RUNS_TABLE"]
    )["Items"]
    return sorted(items, key=lambda item: (item["model"]["S"], item["run_id"]["S"]))


def failed_attempts(stack: Stack, function: str, model: str) -> list[Attempt]:
    """The function's failed attempts at events about the model."""
    return [
        attempt
        for attempt in stack.cloud.runner.journal(function)
        if attempt.invocation.failed and model in json.dumps(attempt.event)
    ]


def check_after(
    stack: Stack,
    inbox: Inbox,
    champion: Any,
    test_rows: list[list[float]],
    model: str,
    run: dict[str, Any],
    status: str,
    reason: str = "",
) -> None:
    """The checks after every fault: record, notification, the live model, the dead letters."""
    assert run["status"] == status, run
    assert reason in run["reason"], run
    notices = inbox.of(model, run["run_id"])
    assert len(notices) == 1, notices
    (notice,) = notices
    assert (notice["status"], notice["reason"]) == (status, run["reason"])
    version, predictions = champion
    served = stack.api.predict(CHAMPION, test_rows)
    assert (served["version"], served["predictions"]) == (version, predictions)
    assert dead_letters(stack) == []


def redeploys(stack: Stack, model: str, after: str, num_round: int) -> None:
    """A new valid drop of the model, after the fault, deploys."""
    stack.drop(model, {"hyperparameters.json": json.dumps({"num_round": str(num_round)})})
    description = stack.wait_for_run(model, after=after)
    assert description["latest_run"]["status"] == "deployed", description["latest_run"]
    assert description["live"]["version"] == description["latest_run"]["run_id"]


@pytest.mark.parametrize(
    ("job", "step"), [("TrainingJob", "training"), ("TransformJob", "batch transform")]
)
def test_a_failing_job_fails_its_run_and_the_next_drop_deploys(
    stack: Stack,
    inbox: Inbox,
    champion: Any,
    test_rows: list[list[float]],
    abalone_files: dict[str, str],
    job: str,
    step: str,
) -> None:
    model = f"fails-{job.lower()}"
    stack.cloud.arm_fault(Fault(job, "fail", message=f"AlgorithmError: injected {job} fault"))

    stack.drop(model, abalone_files)
    description = stack.wait_for_run(model)

    run = description["latest_run"]
    check_after(
        stack, inbox, champion, test_rows, model, run, "failed", f"{step} failed: AlgorithmError"
    )
    assert description["live"] is None
    redeploys(stack, model, run["run_id"], num_round=20)


def test_a_failing_endpoint_creation_is_cleaned_up_and_the_next_drop_deploys(
    stack: Stack,
    inbox: Inbox,
    champion: Any,
    test_rows: list[list[float]],
    abalone_files: dict[str, str],
) -> None:
    model = "fails-creation"
    stack.cloud.arm_fault(Fault("Endpoint", "fail", message="the container did not start"))

    stack.drop(model, abalone_files)
    run = stack.wait_for_run(model)["latest_run"]

    check_after(
        stack, inbox, champion, test_rows, model, run, "failed", "the container did not start"
    )
    assert "was deleted and the next drop creates it anew" in run["reason"]
    with pytest.raises(StackError, match="404"):
        stack.api.predict(model, test_rows)
    redeploys(stack, model, run["run_id"], num_round=20)


@pytest.mark.parametrize(
    ("function", "call"),
    [
        ("StartTrainingFunction", "sagemaker.CreateTrainingJob"),
        ("RunBatchTransformFunction", "sagemaker.CreateTransformJob"),
        ("DeployModelFunction", "sagemaker.CreateEndpointConfig"),
    ],
)
def test_a_function_crashing_mid_invocation_is_retried_and_the_run_deploys(
    stack: Stack,
    inbox: Inbox,
    champion: Any,
    test_rows: list[list[float]],
    abalone_files: dict[str, str],
    function: str,
    call: str,
) -> None:
    # It dies after recording the run's next stage, before making what that stage names.
    model = f"crash-{function.removesuffix('Function').lower()}"
    fault = stack.cloud.arm_fault(Fault(call, "crash", function=function))

    stack.drop(model, abalone_files)
    run = stack.wait_for_run(model)["latest_run"]

    check_after(stack, inbox, champion, test_rows, model, run, "deployed")
    assert stack.cloud.faults.get(fault.id).fired == 1
    (crashed,) = failed_attempts(stack, function, model)
    assert crashed.invocation.payload["errorType"] == "Runtime.ExitError"
    retries = [a for a in stack.cloud.runner.journal(function) if a.event == crashed.event]
    assert [(a.number, a.invocation.failed) for a in retries] == [(1, True), (2, False)]


@pytest.mark.parametrize(
    ("function", "call", "code", "status", "times"),
    [
        # Within botocore's standard-mode retries (5, so 6 attempts): absorbed, no function fails.
        ("StartTrainingFunction", "sagemaker.CreateTrainingJob", "ThrottlingException", 400, 4),
        ("DeployModelFunction", "dynamodb.UpdateItem", "ThrottlingException", 400, 3),
        ("DeployModelFunction", "s3.GetObject", "SlowDown", 503, 2),
        # Past them: the invocation fails and Lambda's retry goes on where it stopped.
        (
            "RunBatchTransformFunction",
            "sagemaker.CreateTransformJob",
            "ThrottlingException",
            400,
            6,
        ),
    ],
)
def test_throttling_is_retried_and_the_run_deploys(
    stack: Stack,
    inbox: Inbox,
    champion: Any,
    test_rows: list[list[float]],
    abalone_files: dict[str, str],
    function: str,
    call: str,
    code: str,
    status: int,
    times: int,
) -> None:
    model = f"throttled-{call.split('.')[1].lower()}"
    fault = stack.cloud.arm_fault(
        Fault(call, "error", times=times, function=function, code=code, status=status)
    )

    stack.drop(model, abalone_files)
    run = stack.wait_for_run(model)["latest_run"]

    check_after(stack, inbox, champion, test_rows, model, run, "deployed")
    assert stack.cloud.faults.get(fault.id).fired == times
    failed = failed_attempts(stack, function, model)
    assert len(failed) == (1 if times > 5 else 0)
    assert all(code in a.invocation.payload["errorMessage"] for a in failed)


def test_a_file_deleted_before_the_handler_reads_it_starts_nothing_until_it_is_back(
    stack: Stack,
    inbox: Inbox,
    champion: Any,
    test_rows: list[list[float]],
    abalone_files: dict[str, str],
) -> None:
    model = "deleted-early"
    stack.drop(model, {"train.csv": abalone_files["train.csv"]})
    stack.drop(model, {"validation.csv": abalone_files["validation.csv"]})
    stack.wait_until_idle()
    pause = stack.cloud.arm_fault(Fault("s3.HeadObject", "pause", function="StartTrainingFunction"))

    # The last file's event reaches the handler; train.csv goes before it looks.
    stack.drop(model, {"test.csv": abalone_files["test.csv"]})
    stack.cloud.faults.wait_until_paused(pause.id)
    s3 = stack.client("s3")
    s3.delete_object(Bucket=stack.cloud.bucket, Key=f"datasets/{model}/train.csv")
    stack.cloud.faults.release(pause.id)
    stack.wait_until_idle()

    assert stack.api.describe(model) is None
    attempt = stack.cloud.runner.journal("StartTrainingFunction")[-1]
    assert attempt.invocation.payload["outcomes"][0]["detail"] == "waiting for train.csv"
    stack.drop(model, {"train.csv": abalone_files["train.csv"]})
    run = stack.wait_for_run(model)["latest_run"]
    check_after(stack, inbox, champion, test_rows, model, run, "deployed")


def test_a_file_deleted_after_the_handler_saw_it_is_trained_on_as_it_was_dropped(
    stack: Stack,
    inbox: Inbox,
    champion: Any,
    test_rows: list[list[float]],
    abalone_files: dict[str, str],
) -> None:
    model = "deleted-late"
    s3 = stack.client("s3")
    versions = {
        name: s3.put_object(
            Bucket=stack.cloud.bucket, Key=f"datasets/{model}/{name}", Body=body.encode()
        )["VersionId"]
        for name, body in abalone_files.items()
        if name != "test.csv"
    }
    stack.wait_until_idle()
    # The handler pauses as it starts copying the drop into the run's own snapshot.
    pause = stack.cloud.arm_fault(Fault("s3.CopyObject", "pause", function="StartTrainingFunction"))
    test = s3.put_object(
        Bucket=stack.cloud.bucket,
        Key=f"datasets/{model}/test.csv",
        Body=abalone_files["test.csv"].encode(),
    )
    versions["test.csv"] = test["VersionId"]

    stack.cloud.faults.wait_until_paused(pause.id)
    for name in ("train.csv", "test.csv"):
        s3.delete_object(Bucket=stack.cloud.bucket, Key=f"datasets/{model}/{name}")
    stack.cloud.faults.release(pause.id)
    run = stack.wait_for_run(model)["latest_run"]

    check_after(stack, inbox, champion, test_rows, model, run, "deployed")
    # The record names the exact versions the run was trained and tested on.
    key = {"model": {"S": model}, "run_id": {"S": run["run_id"]}}
    (record,) = [item for item in runs_table(stack) if key.items() <= item.items()]
    recorded = {
        name: entry["M"]["version_id"]["S"] for name, entry in record["inputs"]["M"].items()
    }
    assert recorded == versions


def test_every_event_replayed_twice_at_once_changes_nothing(
    stack: Stack, inbox: Inbox, champion: Any, test_rows: list[list[float]]
) -> None:
    """S3 and EventBridge deliver at least once: replay all the module delivered, concurrently."""
    functions = (
        "StartTrainingFunction",
        "RunBatchTransformFunction",
        "DeployModelFunction",
        "TrackEndpointFunction",
    )
    events = [
        (function, attempt.event)
        for function in functions
        for attempt in stack.cloud.runner.journal(function)
        if attempt.number == 1
    ]
    sagemaker = stack.client("sagemaker")

    def resources() -> tuple[int, ...]:
        return (
            len(sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]),
            len(sagemaker.list_transform_jobs(MaxResults=100)["TransformJobSummaries"]),
            len(sagemaker.list_models(MaxResults=100)["Models"]),
            len(sagemaker.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]),
            len(sagemaker.list_endpoints(MaxResults=100)["Endpoints"]),
        )

    before = (resources(), runs_table(stack))
    inbox.new()

    for function, event in events * 2:
        stack.cloud.runner.invoke_async(function, event)
    stack.wait_until_idle()

    assert len(events) > 50, len(events)
    # Not one item of the Runs table changed, not even a timestamp.
    assert (resources(), runs_table(stack)) == before
    assert inbox.new() == []
    # Over the whole module: one notification per run.
    assert len(inbox.seen) == len({(n["model"], n["run_id"]) for n in inbox.seen})
    assert dead_letters(stack) == []
    served = stack.api.predict(CHAMPION, test_rows)
    assert (served["version"], served["predictions"]) == champion


# Last: its new drop replaces the champion every other test compares with.
def test_a_failing_update_keeps_the_live_model_serving(
    stack: Stack, inbox: Inbox, champion: Any, test_rows: list[list[float]]
) -> None:
    stack.cloud.arm_fault(Fault("Endpoint", "fail", message="the new variant failed its ping"))

    # Better than the champion, so it passes the gate and updates the endpoint, which fails.
    stack.drop(CHAMPION, {"hyperparameters.json": json.dumps({"num_round": "200"})})
    run = stack.wait_for_run(CHAMPION, after=champion[0])["latest_run"]

    check_after(
        stack, inbox, champion, test_rows, CHAMPION, run, "failed", "the new variant failed"
    )
    endpoint = stack.client("sagemaker").describe_endpoint(EndpointName=run["endpoint"])
    assert endpoint["EndpointStatus"] == "InService"
    assert champion[0] in endpoint["EndpointConfigName"]
    redeploys(stack, CHAMPION, run["run_id"], num_round=150)


def test_faults_can_be_armed_listed_and_cleared_from_the_client(stack: Stack) -> None:
    armed = xgbpipe(
        stack,
        "local",
        "fault",
        "sagemaker.CreateTrainingJob",
        "--function",
        "StartTrainingFunction",
        "--times",
        "2",
    )
    assert armed.exit_code == 0, armed.output
    (fault,) = stack.cloud.faults.armed()
    assert (fault.target, fault.effect, fault.times, fault.code) == (
        "sagemaker.CreateTrainingJob",
        "error",
        2,
        "ThrottlingException",
    )
    assert fault.function == stack.cloud.runner.wiring.function("StartTrainingFunction").name
    listed = xgbpipe(stack, "local", "fault")
    assert f"{fault.id}  error sagemaker.CreateTrainingJob in {fault.function}  fired 0 of 2" in (
        listed.output
    )
    assert_one_line_error(xgbpipe(stack, "local", "fault", "Training"), "a call fault targets")

    cleared = xgbpipe(stack, "local", "fault", "--clear")
    assert cleared.exit_code == 0, cleared.output
    assert stack.cloud.faults.armed() == []
