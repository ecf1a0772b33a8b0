"""The whole chain on the local cloud: S3 drop, training, transform, gate, endpoint, API."""

from __future__ import annotations

import json
import math

import pytest
from sklearn.metrics import mean_squared_error, roc_auc_score

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def test_abalone_regression_is_deployed_and_serves_predictions(
    stack: Stack, abalone_files: dict[str, str]
) -> None:
    assert stack.api.describe("abalone") is None

    stack.drop("abalone", abalone_files)
    description = stack.wait_for_run("abalone")

    run = description["latest_run"]
    assert run["status"] == "deployed", run
    rmse = run["metrics"]["rmse"]
    assert 2.0 <= rmse <= 2.5
    assert description["live"]["version"] == run["run_id"]
    rows = [[float(v) for v in line.split(",")] for line in abalone_files["test.csv"].split()]
    result = stack.api.predict("abalone", [row[1:] for row in rows])
    assert result["version"] == run["run_id"]
    truth = [row[0] for row in rows]
    # The endpoint's predictions score exactly as the batch transform did.
    assert math.sqrt(mean_squared_error(truth, result["predictions"])) == pytest.approx(rmse)


def test_binary_classification_is_scored_by_auc(
    stack: Stack, old_abalone_files: dict[str, str]
) -> None:
    stack.drop("abalone-old", old_abalone_files)
    run = stack.wait_for_run("abalone-old")["latest_run"]

    assert run["status"] == "deployed", run
    rows = [[float(v) for v in line.split(",")] for line in old_abalone_files["test.csv"].split()]
    predictions = stack.api.predict("abalone-old", [row[1:] for row in rows])["predictions"]
    assert all(0.0 <= p <= 1.0 for p in predictions)
    auc = roc_auc_score([row[0] for row in rows], predictions)
    assert auc > 0.8
    assert run["metrics"]["auc"] == pytest.approx(auc, abs=1e-6)


def test_worse_drop_is_rejected_and_better_one_replaces_the_live_model(
    stack: Stack, abalone_files: dict[str, str]
) -> None:
    weak = {"num_round": "3", "max_depth": "2", "eta": "0.3"}
    stack.drop("champion", {"hyperparameters.json": json.dumps(weak), **abalone_files})
    first = stack.wait_for_run("champion")["latest_run"]
    assert first["status"] == "deployed", first

    worse = {"num_round": "1", "max_depth": "1", "eta": "0.05"}
    stack.drop("champion", {"hyperparameters.json": json.dumps(worse)})
    description = stack.wait_for_run("champion", after=first["run_id"])
    second = description["latest_run"]
    assert second["status"] == "rejected", second
    assert second["metrics"]["rmse"] > first["metrics"]["rmse"]
    assert description["live"]["version"] == first["run_id"]

    stack.drop("champion", {"hyperparameters.json": json.dumps({"num_round": "200"})})
    description = stack.wait_for_run("champion", after=second["run_id"])
    third = description["latest_run"]
    assert third["status"] == "deployed", third
    assert third["metrics"]["rmse"] < first["metrics"]["rmse"]
    # It was also scored on the champion's own test set, and beat it there too.
    head_to_head = third["gate"]["on_live_test_set"]
    assert head_to_head["run_id"] == first["run_id"]
    assert head_to_head["value"] < head_to_head["live_value"] == first["metrics"]["rmse"]
    assert (
        "On the live model's own test set it scores rmse"
        in third["reason"] + third["gate"]["reason"]
    )
    assert description["live"]["version"] == third["run_id"]
    endpoint = stack.client("sagemaker").describe_endpoint(
        EndpointName=description["live"]["endpoint"]
    )
    assert endpoint["EndpointStatus"] == "InService"
    assert third["run_id"] in endpoint["EndpointConfigName"]


def test_invalid_drop_is_rejected_with_its_reason(
    stack: Stack, abalone_files: dict[str, str]
) -> None:
    with_header = "rings,length,diameter\n" + abalone_files["train.csv"]
    stack.drop("broken", {**abalone_files, "train.csv": with_header})
    description = stack.wait_for_run("broken")

    run = description["latest_run"]
    assert run["status"] == "invalid", run
    assert "train.csv" in run["reason"]
    assert description["live"] is None


def test_failing_training_job_is_reported_and_deploys_nothing(
    stack: Stack, abalone_files: dict[str, str]
) -> None:
    # Valid for the stack and the container's checks; XGBoost's CPU build refuses it in training.
    hyperparameters = json.dumps({"sampling_method": "gradient_based", "subsample": "0.5"})
    stack.drop("failing", {"hyperparameters.json": hyperparameters, **abalone_files})
    description = stack.wait_for_run("failing")

    run = description["latest_run"]
    assert run["status"] == "failed", run
    assert run["reason"]
    assert description["live"] is None


def test_duplicated_events_start_nothing_twice(stack: Stack, abalone_files: dict[str, str]) -> None:
    stack.drop("twice", abalone_files)
    run = stack.wait_for_run("twice")["latest_run"]
    sagemaker = stack.client("sagemaker")

    def jobs() -> tuple[int, int, int]:
        return (
            len(sagemaker.list_training_jobs(NameContains="twice")["TrainingJobSummaries"]),
            len(sagemaker.list_transform_jobs(NameContains="twice")["TransformJobSummaries"]),
            len(sagemaker.list_endpoint_configs(NameContains="twice")["EndpointConfigs"]),
        )

    before = jobs()
    # S3 delivers at least once: the same objects again; SageMaker may repeat its events.
    stack.drop("twice", {"test.csv": abalone_files["test.csv"]})
    training_job = sagemaker.describe_training_job(TrainingJobName=run["training_job"])
    detail = {**training_job, "TrainingJobStatus": "Completed"}
    entry = {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Training Job State Change",
        "Detail": json.dumps(detail, default=str),
    }
    stack.client("events").put_events(Entries=[entry, entry])
    stack.wait_until_idle()

    assert jobs() == before
    assert stack.latest_run("twice") == run
