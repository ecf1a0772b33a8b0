"""Blue/green updates of an instance endpoint, with a client calling throughout."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.conftest import Stack, local_stack
from xgbpipe.client import StackError
from xgbpipe.local.faults import Fault

pytestmark = pytest.mark.e2e

MODEL = "bluegreen"
WEAK = {"num_round": "3", "max_depth": "2", "eta": "0.3"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    overrides = {"EndpointKind": "instance", "BakeSeconds": "2"}
    with local_stack(tmp_path_factory.mktemp("instance-cloud"), overrides) as started:
        yield started


@pytest.fixture(scope="module")
def rows(abalone_files: dict[str, str]) -> list[list[float]]:
    lines = abalone_files["test.csv"].split()[:20]
    return [[float(v) for v in line.split(",")][1:] for line in lines]


@dataclass
class Caller:
    """A client calling the predict URL in a loop until stopped, keeping every answer."""

    stack: Stack
    rows: list[list[float]]
    answers: list[list[float] | str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Caller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self.stack.api.predict(MODEL, self.rows)["predictions"])
            except StackError as error:
                self.answers.append(str(error))

    def failures(self) -> list[str]:
        return [answer for answer in self.answers if isinstance(answer, str)]


def live_predictions(stack: Stack, rows: list[list[float]]) -> tuple[str, list[float]]:
    answer = stack.api.predict(MODEL, rows)
    return answer["version"], answer["predictions"]


@pytest.fixture(scope="module")
def champion(stack: Stack, abalone_files: dict[str, str], rows: list[list[float]]) -> Any:
    stack.drop(MODEL, {"hyperparameters.json": json.dumps(WEAK), **abalone_files})
    run = stack.wait_for_run(MODEL)["latest_run"]
    assert run["status"] == "deployed", run
    return live_predictions(stack, rows)


def drop_hyperparameters(stack: Stack, hyperparameters: dict[str, str], after: str) -> Any:
    stack.drop(MODEL, {"hyperparameters.json": json.dumps(hyperparameters)})
    return stack.wait_for_run(MODEL, after=after)


def test_a_failing_new_version_is_rolled_back_and_the_old_one_still_answers(
    stack: Stack, rows: list[list[float]], champion: Any
) -> None:
    version, predictions = champion
    stack.cloud.arm_fault(Fault("Invocation", "fail", message="the new model crashed"))

    with Caller(stack, rows) as caller:
        description = drop_hyperparameters(stack, {"num_round": "150"}, after=version)

    run = description["latest_run"]
    assert run["status"] == "failed", run
    assert "rolled back" in run["reason"]
    assert "bluegreen-5xx-errors" in run["reason"] or "model-errors" in run["reason"]
    assert "the new model crashed" in run["reason"]
    assert description["live"]["version"] == version
    # The new fleet failed one request, which fired the alarm; until the rollback it answered
    # with its own model, as on AWS while an alarm is evaluated; then the old model again.
    (failure,) = caller.failures()
    assert "502" in failure
    assert "the new model crashed" in failure
    answers = [json.dumps(a) for a in caller.answers if a != failure]
    assert len(set(answers) - {json.dumps(predictions)}) <= 1
    assert caller.answers[-1] == predictions
    assert live_predictions(stack, rows) == champion
    endpoint = stack.client("sagemaker").describe_endpoint(EndpointName=run["endpoint"])
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        f"xgbp-{MODEL}-{version}",
    )


def test_a_better_model_replaces_the_live_one_with_no_failed_request(
    stack: Stack, rows: list[list[float]], champion: Any
) -> None:
    old_version, old_predictions = champion
    latest = stack.latest_run(MODEL)
    assert latest is not None

    with Caller(stack, rows) as caller:
        description = drop_hyperparameters(stack, {"num_round": "200"}, after=latest["run_id"])
        new_version, new_predictions = live_predictions(stack, rows)

    run = description["latest_run"]
    assert run["status"] == "deployed", run
    assert new_version == run["run_id"] != old_version
    assert new_predictions != old_predictions
    assert caller.failures() == []
    # Every answer came whole from one version, and traffic moved over once, all at once.
    switched = [answer == new_predictions for answer in caller.answers]
    assert all(answer in (old_predictions, new_predictions) for answer in caller.answers)
    assert switched == sorted(switched)
    assert len(caller.answers) > 10
    endpoint = stack.client("sagemaker").describe_endpoint(EndpointName=run["endpoint"])
    assert endpoint["LastDeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 2},
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": f"xgbp-{MODEL}-5xx-errors"},
                {"AlarmName": f"xgbp-{MODEL}-model-errors"},
            ]
        },
    }
