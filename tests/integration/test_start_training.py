"""start_training with moto: a full drop starts one job; duplicates and bad drops start none."""

from __future__ import annotations

import gzip
from types import SimpleNamespace

import pytest

from functions.start_training.handler import lambda_handler
from tests.integration.conftest import (
    BUCKET,
    IMAGE,
    ROLE_ARN,
    Stack,
    abalone_like,
    s3_event,
)

SEED_HYPERPARAMETERS = {
    "max_depth": "5",
    "eta": "0.2",
    "gamma": "4",
    "min_child_weight": "6",
    "subsample": "0.8",
    "objective": "reg:squarederror",
    "early_stopping_rounds": "10",
    "num_round": "200",
    "eval_metric": "rmse",
}


def test_full_drop_starts_one_training_job_with_the_seed_settings(
    stack: Stack, lambda_context: SimpleNamespace
) -> None:
    # Given the three files of a drop
    keys = stack.drop("abalone", abalone_like(60))

    # When S3 announces the last of them
    result = lambda_handler(s3_event(keys[-1:]), lambda_context)

    # Then exactly one training job starts, with the seed's hyperparameters and the right image
    (outcome,) = result["outcomes"]
    assert outcome["action"] == "training_started"
    run_id = outcome["run_id"]
    (request,) = stack.requests("CreateTrainingJob")
    prefix = f"s3://{BUCKET}/runs/abalone/{run_id}"
    assert request == {
        "TrainingJobName": f"xgbp-abalone-{run_id}",
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{prefix}/input/{channel}.csv",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "text/csv",
                "CompressionType": "None",
            }
            for channel in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"{prefix}/training"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": SEED_HYPERPARAMETERS,
        "Tags": [
            {"Key": "xgbpipe:model", "Value": "abalone"},
            {"Key": "xgbpipe:run-id", "Value": run_id},
        ],
    }
    # And the run is recorded, with the inputs snapshotted beside it
    run = stack.run("abalone", run_id)
    assert (run["stage"], run["status"], run["num_features"]) == ("training", "in_progress", 8)
    for name in ("train.csv", "validation.csv", "test.csv"):
        snapshot = stack.s3.get_object(Bucket=BUCKET, Key=f"runs/abalone/{run_id}/input/{name}")
        original = stack.s3.get_object(Bucket=BUCKET, Key=f"datasets/abalone/{name}")
        assert snapshot["Body"].read() == original["Body"].read()


def test_training_waits_until_all_three_files_are_there(
    stack: Stack, lambda_context: SimpleNamespace
) -> None:
    files = abalone_like(30)
    keys = stack.drop("abalone", {k: v for k, v in files.items() if k != "test.csv"})

    result = lambda_handler(s3_event(keys), lambda_context)

    assert result["outcomes"][0]["action"] == "waiting"
    assert "test.csv" in result["outcomes"][0]["detail"]
    assert stack.requests("CreateTrainingJob") == []


def test_duplicated_and_replayed_events_start_nothing_more(
    stack: Stack, lambda_context: SimpleNamespace
) -> None:
    # Given all three files, each announced, one of them twice
    keys = stack.drop("abalone", abalone_like(30))
    first = lambda_handler(s3_event(keys), lambda_context)

    # When the events are delivered again, and the same content is uploaded once more
    replay = lambda_handler(s3_event([keys[0], keys[0]]), lambda_context)
    stack.drop("abalone", abalone_like(30))
    again = lambda_handler(s3_event(keys[1:2]), lambda_context)

    # Then every later delivery asks again for the same job (what a retry after a crash between
    # the record and the job needs), and SageMaker's name check keeps it to one job and one run
    assert [o["action"] for o in first["outcomes"]] == ["training_started", "ignored", "ignored"]
    assert [o["action"] for o in replay["outcomes"]] == ["training_already_started", "ignored"]
    assert [o["action"] for o in again["outcomes"]] == ["training_already_started"]
    names = {r["TrainingJobName"] for r in stack.requests("CreateTrainingJob")}
    assert len(names) == 1
    assert len(stack.runs("abalone")) == 1


def test_new_content_starts_a_new_run(stack: Stack, lambda_context: SimpleNamespace) -> None:
    keys = stack.drop("abalone", abalone_like(30, seed=1))
    lambda_handler(s3_event(keys[-1:]), lambda_context)
    stack.drop("abalone", {"hyperparameters.json": '{"max_depth": 3}'})

    result = lambda_handler(s3_event(["datasets/abalone/hyperparameters.json"]), lambda_context)

    assert result["outcomes"][0]["action"] == "training_started"
    requests = stack.requests("CreateTrainingJob")
    assert [r["HyperParameters"]["max_depth"] for r in requests] == ["5", "3"]


def test_keys_outside_a_drop_are_ignored(stack: Stack, lambda_context: SimpleNamespace) -> None:
    keys = ["datasets/abalone/notes.txt", "datasets/readme.md", "datasets/a/b/train.csv"]
    for key in keys:
        stack.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")

    result = lambda_handler(s3_event(keys), lambda_context)

    assert [o["action"] for o in result["outcomes"]] == ["ignored"] * 3
    assert stack.sagemaker_requests == []


GOOD = abalone_like(30)
TRAIN, VALIDATION, TEST = GOOD["train.csv"], GOOD["validation.csv"], GOOD["test.csv"]
BINARY_TRAIN = "".join(f"{i % 2},{i / 10},{i / 7}\n" for i in range(20))
BINARY_OTHER = "".join(f"{i % 2},{i / 9},{i / 5}\n" for i in range(8))
LABEL_TWO = BINARY_TRAIN + "2,0.5,0.5\n"


def _drop(model: str = "abalone", **files: str | bytes) -> tuple[str, dict[str, str | bytes]]:
    named: dict[str, str | bytes] = {
        "train.csv": TRAIN,
        "validation.csv": VALIDATION,
        "test.csv": TEST,
    }
    for name, body in files.items():
        named[name.replace("_csv", ".csv").replace("_json", ".json")] = body
    return model, named


INVALID_DROPS = {
    "header row": (_drop(train_csv="rings,length\n" + TRAIN), "looks like a header"),
    "non-numeric field": (_drop(validation_csv="1,abc,3,4,5,6,7,8,9\n"), "is not a number"),
    "ragged rows": (_drop(train_csv=TRAIN + "1,2,3\n"), "fields but line 1 has"),
    "widths differ": (_drop(test_csv="1,2,3\n4,5,6\n"), "columns but train.csv has"),
    "empty file": (_drop(test_csv=""), "test.csv is empty"),
    "label only": (_drop(train_csv="1\n2\n3\n"), "only 1 column"),
    "binary label 2": (
        _drop(
            train_csv=LABEL_TWO,
            validation_csv=BINARY_OTHER,
            test_csv=BINARY_OTHER,
            hyperparameters_json='{"objective": "binary:logistic"}',
        ),
        "needs labels 0 or 1",
    ),
    "multiclass without num_class": (
        _drop(hyperparameters_json='{"objective": "multi:softmax"}'),
        "num_class",
    ),
    "class label out of range": (
        _drop(
            train_csv=LABEL_TWO,
            validation_csv=BINARY_OTHER,
            test_csv=BINARY_OTHER,
            hyperparameters_json='{"objective": "multi:softprob", "num_class": 2}',
        ),
        "num_class 2 allows 0 to 1",
    ),
    "unknown hyperparameter": (
        _drop(hyperparameters_json='{"max_dept": 4}'),
        "Extraneous hyperparameter found: max_dept",
    ),
    "illegal hyperparameter value": (_drop(hyperparameters_json='{"eta": 2}'), "eta"),
    "hyperparameters not JSON": (_drop(hyperparameters_json="max_depth=4"), "not valid JSON"),
    "hyperparameters not an object": (_drop(hyperparameters_json="[1, 2]"), "JSON object"),
    "ranking objective": (_drop(hyperparameters_json='{"objective": "rank:pairwise"}'), "rank"),
    "bad model name": (_drop(model="Abalone_V2"), "lower-case letters"),
    "empty label": (_drop(train_csv=TRAIN + ",1,2,3,4,5,6,7,8\n"), "label (column 1) is empty"),
    "NaN label": (
        _drop(train_csv=TRAIN + "nan,1,2,3,4,5,6,7,8\n"),
        "the label (column 1) is 'nan'",
    ),
    "beyond 32-bit floats": (
        _drop(validation_csv=VALIDATION + "1,1e39,2,3,4,5,6,7,8\n"),
        "too large for XGBoost's 32-bit floats",
    ),
    "quoted fields": (_drop(test_csv='"1","2","3","4","5","6","7","8","9"\n'), "quoted fields"),
    "UTF-8 BOM": (_drop(train_csv="\ufeff" + TRAIN), "byte order mark"),
    "latin-1 bytes": (_drop(validation_csv=b"1,caf\xe9,3,4,5,6,7,8,9\n"), r"'caf\xe9'"),
    "gzip in a .csv": (_drop(train_csv=gzip.compress(TRAIN.encode())), "compressed or binary"),
    "digits with underscores": (_drop(test_csv=TEST + "1,1_000,3,4,5,6,7,8,9\n"), "'1_000'"),
    "blank line between rows": (_drop(train_csv="\n" + TRAIN), "blank but more rows follow"),
    "semicolons": (_drop(test_csv=TEST.replace(",", ";")), "with semicolons"),
    "tabs": (_drop(validation_csv=VALIDATION.replace(",", "\t")), "with tabs"),
    "one class for AUC": (
        _drop(
            train_csv=BINARY_TRAIN,
            validation_csv=BINARY_OTHER,
            test_csv="".join(f"0,{i / 9},{i / 5}\n" for i in range(8)),
            hyperparameters_json='{"objective": "binary:logistic"}',
        ),
        "holds only label 0 rows",
    ),
    "log objective, negative labels": (
        _drop(
            train_csv=TRAIN + "-3,1,2,3,4,5,6,7,8\n",
            hyperparameters_json='{"objective": "reg:squaredlogerror"}',
        ),
        "reg:squaredlogerror",
    ),
    "space and unicode in the model": (_drop(model="my modèl"), "'my modèl'"),
    "pipeline.json not JSON": (_drop(pipeline_json="gate: rmse"), "pipeline.json is not valid"),
    "pipeline.json unknown setting": (
        _drop(pipeline_json='{"gate": {}, "retries": 3}'),
        "unknown settings ['retries']",
    ),
    "bar on a metric of another problem": (
        _drop(pipeline_json='{"gate": {"auc": 0.8}}'),
        "regression models are scored on rmse, mae, r2, not 'auc'",
    ),
    "logloss bar without probabilities": (
        _drop(
            train_csv=BINARY_TRAIN,
            validation_csv=BINARY_OTHER,
            test_csv=BINARY_OTHER,
            hyperparameters_json='{"objective": "binary:logitraw"}',
            pipeline_json='{"gate": {"logloss": 0.4}}',
        ),
        "binary:logitraw predicts no probabilities",
    ),
    "bar that is not a number": (
        _drop(pipeline_json='{"gate": {"rmse": "low"}}'),
        "the bar of rmse must be a number",
    ),
}


@pytest.mark.parametrize("case", INVALID_DROPS, ids=list(INVALID_DROPS))
def test_each_invalid_drop_is_rejected_with_its_own_reason(
    case: str, stack: Stack, lambda_context: SimpleNamespace
) -> None:
    # Given a drop with one fault
    (model, files), expected = INVALID_DROPS[case]
    keys = stack.drop(model, files)

    # When it is announced
    result = lambda_handler(s3_event(keys[-1:]), lambda_context)

    # Then the run is invalid with a reason naming the fault, one notification says so,
    # and no SageMaker resource is created
    (outcome,) = result["outcomes"]
    assert outcome["action"] == "invalid", outcome
    assert expected in outcome["detail"]
    (run,) = stack.runs(model)
    assert (run["status"], run["reason"]) == ("invalid", outcome["detail"])
    (notification,) = stack.notifications()
    assert notification["status"] == "invalid"
    assert expected in notification["reason"]
    assert stack.sagemaker_requests == []


def test_reasons_are_distinct_across_the_table() -> None:
    reasons = [expected for _, expected in INVALID_DROPS.values()]
    assert len(set(reasons)) == len(reasons) >= 25


def test_crlf_line_endings_and_missing_features_are_accepted(
    stack: Stack, lambda_context: SimpleNamespace
) -> None:
    # Windows line endings, an empty feature field and "nan" are all missing values to XGBoost
    crlf = {name: body.replace("\n", "\r\n") for name, body in GOOD.items()}
    crlf["train.csv"] += "3,,0.5,nan,1,2,3,4,5\r\n"
    keys = stack.drop("abalone", crlf)

    result = lambda_handler(s3_event(keys[-1:]), lambda_context)

    assert result["outcomes"][0]["action"] == "training_started", result
