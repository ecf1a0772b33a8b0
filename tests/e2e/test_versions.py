"""Versions, rollback on request, deletion and idle endpoints, on the local cloud."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, local_stack
from tests.e2e.test_client import xgbpipe
from xgbpipe.client import StackError

pytestmark = pytest.mark.e2e

MODEL = "versioned"
IDLE_HOURS = 0.002  # 7.2 seconds


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    overrides = {"IdleEndpointHours": str(IDLE_HOURS)}
    with local_stack(tmp_path_factory.mktemp("versions-cloud"), overrides) as started:
        yield started


@pytest.fixture(scope="module")
def rows(abalone_files: dict[str, str]) -> list[list[float]]:
    lines = abalone_files["test.csv"].split()[:30]
    return [[float(v) for v in line.split(",")][1:] for line in lines]


def deploy(stack: Stack, model: str, files: dict[str, str], after: str | None = None) -> str:
    stack.drop(model, files)
    run = stack.wait_for_run(model, after=after)["latest_run"]
    assert run["status"] == "deployed", run
    return str(run["run_id"])


def serves(stack: Stack, model: str, version: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while ((stack.api.describe(model) or {}).get("live") or {}).get("version") != version:
        assert time.monotonic() < deadline, f"{model} does not serve {version}"
        time.sleep(0.3)
    stack.wait_until_idle()


@pytest.fixture(scope="module")
def two_versions(
    stack: Stack, abalone_files: dict[str, str], rows: list[list[float]]
) -> dict[str, list[float]]:
    weak = json.dumps({"num_round": "3", "max_depth": "2", "eta": "0.3"})
    first = deploy(stack, MODEL, {"hyperparameters.json": weak, **abalone_files})
    first_predictions = stack.api.predict(MODEL, rows)["predictions"]
    better = json.dumps({"num_round": "200"})
    second = deploy(stack, MODEL, {"hyperparameters.json": better}, after=first)
    return {first: first_predictions, second: stack.api.predict(MODEL, rows)["predictions"]}


def test_versions_list_every_deployed_run_with_its_data_and_settings(
    stack: Stack, two_versions: dict[str, list[float]]
) -> None:
    first, second = two_versions

    listed = stack.api.versions(MODEL)

    assert listed["live_version"] == second
    assert [(v["version"], v["live"]) for v in listed["versions"]] == [
        (second, True),
        (first, False),
    ]
    newest = listed["versions"][0]
    assert newest["hyperparameters"]["num_round"] == "200"
    assert newest["metrics"]["rmse"] > 0
    assert newest["model_artifacts"].endswith("model.tar.gz")
    assert set(newest["data"]) == {
        "train.csv",
        "validation.csv",
        "test.csv",
        "hyperparameters.json",
    }
    assert all(entry["etag"] for entry in newest["data"].values())
    assert [entry["version"] for entry in listed["history"]] == [first, second]


def test_rollback_restores_the_previous_versions_predictions_exactly(
    stack: Stack, two_versions: dict[str, list[float]], rows: list[list[float]]
) -> None:
    first, second = two_versions
    stack.notifications()

    started = stack.api.rollback(MODEL)
    serves(stack, MODEL, first)

    assert (started["version"], started["from"], started["status"]) == (
        first,
        second,
        "rolling_back",
    )
    assert stack.api.predict(MODEL, rows)["predictions"] == two_versions[first]
    (notice,) = stack.notifications()
    assert (notice["run_id"], notice["status"]) == (first, "rolled_back")
    assert f"rolled back from version {second}" in notice["reason"]
    history = stack.api.versions(MODEL)["history"]
    assert history[-1]["version"] == first
    assert (history[-1]["via"], history[-1]["rolled_back_from"]) == ("rollback", second)
    listed = xgbpipe(stack, "versions", MODEL)
    assert listed.exit_code == 0, listed.output
    assert f"{first} went live, rolled back from {second}" in listed.output

    # And forward again, with the client.
    result = xgbpipe(stack, "rollback", MODEL, "--to", second)
    assert result.exit_code == 0, result.output
    assert f"Version {second} of {MODEL} is live." in result.output
    assert stack.api.predict(MODEL, rows)["predictions"] == two_versions[second]


def test_rollback_requests_that_cannot_be_met_say_why(
    stack: Stack, two_versions: dict[str, list[float]]
) -> None:
    second = list(two_versions)[1]
    with pytest.raises(StackError, match=r"409.*already live"):
        stack.api.rollback(MODEL, second)
    with pytest.raises(StackError, match=r"404.*never deployed"):
        stack.api.rollback(MODEL, "0123456789ab")
    with pytest.raises(StackError, match=r"404.*no model named nobody"):
        stack.api.rollback("nobody")


def test_a_deleted_endpoint_answers_404_saying_so_and_a_rollback_serves_again(
    stack: Stack, two_versions: dict[str, list[float]], rows: list[list[float]]
) -> None:
    second = list(two_versions)[1]

    result = xgbpipe(stack, "delete", MODEL, "--yes")
    assert result.exit_code == 0, result.output
    stack.wait_until_idle()

    with pytest.raises(StackError, match=r"404.*was deleted on request.*rollback"):
        stack.api.predict(MODEL, rows)
    stack.api.rollback(MODEL)
    serves(stack, MODEL, second)
    assert stack.api.predict(MODEL, rows)["predictions"] == two_versions[second]


def test_an_idle_endpoint_is_deleted_and_a_busy_one_kept(
    stack: Stack,
    two_versions: dict[str, list[float]],
    abalone_files: dict[str, str],
    rows: list[list[float]],
) -> None:
    idle = "idle"
    deploy(stack, idle, abalone_files)
    # The busy model is called throughout the idle time; the other is not called at all.
    deadline = time.monotonic() + IDLE_HOURS * 3600 + 1
    while time.monotonic() < deadline:
        stack.api.predict(MODEL, rows)
        time.sleep(0.5)
    time.sleep(1.5)  # the local SageMaker sends its metrics every second

    event = json.loads(
        (stack.cloud.template_path.parent / "events/retire_idle_endpoints.json").read_text()
    )
    invocation = stack.cloud.runner.invoke("RetireIdleEndpointsFunction", event)
    stack.wait_until_idle()

    assert not invocation.failed, invocation.payload
    outcomes = {o["model"]: o["action"] for o in invocation.payload["outcomes"]}
    assert outcomes == {MODEL: "kept", idle: "deleted"}
    with pytest.raises(StackError, match=r"404.*deleted after 0.002 hours without invocations"):
        stack.api.predict(idle, rows)
    assert stack.api.predict(MODEL, rows)["predictions"] == two_versions[list(two_versions)[1]]
    endpoints = stack.client("sagemaker").list_endpoints()["Endpoints"]
    assert [e["EndpointName"] for e in endpoints] == [f"xgbp-{MODEL}"]
