"""The whole chain through boto3: train, batch transform, deploy, update, invoke, events.

The oracle is xgboost itself, called in this process with the same data and parameters; every
prediction that comes back through the local SageMaker must equal it bit for bit.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from cfnlint.decode.cfn_yaml import load as load_cfn_yaml

from tests.local_sagemaker.conftest import IMAGE, ROLE, Abalone, Stack, run_training, wait_until
from xgbpipe.local.sagemaker.validation import service_model

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
PREFIX = "xgbp"  # the template's default JobPrefix: its event rules match names starting "xgbp-"
HYPERPARAMETERS = {
    "objective": "reg:squarederror",
    "num_round": "40",
    "max_depth": "4",
    "eta": "0.4",
    "eval_metric": "rmse",
    "early_stopping_rounds": "3",
}
JOB = f"{PREFIX}-abalone-1"
SECOND_JOB = f"{PREFIX}-abalone-2"
ENDPOINT = f"{PREFIX}-abalone"


def matrix(frame: Any) -> tuple[np.ndarray, np.ndarray]:
    values = frame.to_numpy(dtype=float)
    return values[:, 1:], values[:, 0]


def oracle(abalone: Abalone, early_stopping: bool) -> tuple[xgb.Booster, dict[str, Any]]:
    """xgboost.train called directly with the job's data and parameters, and its eval log."""
    x_train, y_train = matrix(abalone.train)
    x_validation, y_validation = matrix(abalone.validation)
    train = xgb.DMatrix(x_train, label=y_train)
    validation = xgb.DMatrix(x_validation, label=y_validation)
    params = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.4, "eval_metric": "rmse"}
    callbacks = (
        [xgb.callback.EarlyStopping(rounds=3, data_name="validation", save_best=True)]
        if early_stopping
        else []
    )
    history: dict[str, Any] = {}
    booster = xgb.train(
        params,
        train,
        num_boost_round=40 if early_stopping else 5,
        evals=[(train, "train"), (validation, "validation")],
        callbacks=callbacks,
        evals_result=history,
        verbose_eval=False,
    )
    return booster, history


def oracle_predictions(abalone: Abalone, early_stopping: bool = True) -> np.ndarray:
    booster, _ = oracle(abalone, early_stopping)
    predictions: np.ndarray = booster.predict(xgb.DMatrix(matrix(abalone.test)[0]))
    return predictions


def container_text(predictions: np.ndarray) -> str:
    """What the container writes: Python `str()` of each float32 widened to float, one a line."""
    return "".join(f"{float(value)}\n" for value in predictions)


def read_s3(stack: Stack, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body: bytes = stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


@pytest.fixture(scope="module")
def trained(stack: Stack) -> dict[str, Any]:
    job = run_training(stack, JOB, HYPERPARAMETERS)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job


@pytest.fixture(scope="module")
def test_features(abalone: Abalone) -> np.ndarray:
    return matrix(abalone.test)[0]


@pytest.fixture(scope="module")
def deployed(stack: Stack, trained: dict[str, Any]) -> str:
    model_url = trained["ModelArtifacts"]["S3ModelArtifacts"]
    stack.sagemaker.create_model(
        ModelName=JOB,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": model_url},
        ExecutionRoleArn=ROLE,
    )
    stack.sagemaker.create_endpoint_config(
        EndpointConfigName=f"{JOB}-serverless",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": JOB,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    stack.sagemaker.create_endpoint(
        EndpointName=ENDPOINT,
        EndpointConfigName=f"{JOB}-serverless",
        Tags=[{"Key": "project", "Value": "xgbpipe"}],
    )
    described = wait_until(
        lambda: stack.sagemaker.describe_endpoint(EndpointName=ENDPOINT),
        lambda endpoint: endpoint["EndpointStatus"] != "Creating",
    )
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return ENDPOINT


def test_training_job_completes_with_the_container_record(trained: dict[str, Any]) -> None:
    assert trained["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in trained["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert trained["ModelArtifacts"]["S3ModelArtifacts"].endswith(
        f"/models/{JOB}/output/model.tar.gz"
    )
    names = {metric["MetricName"] for metric in trained["FinalMetricDataList"]}
    assert names == {"train:rmse", "validation:rmse"}
    assert trained["TrainingStartTime"] <= trained["TrainingEndTime"]
    assert trained["HyperParameters"] == HYPERPARAMETERS


def test_artifact_is_xgboost_model_in_ubjson_and_predicts_like_xgboost(
    stack: Stack, trained: dict[str, Any], abalone: Abalone, test_features: np.ndarray
) -> None:
    archive = read_s3(stack, trained["ModelArtifacts"]["S3ModelArtifacts"])
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert tar.getnames() == ["xgboost-model"]
        model_file = tar.extractfile("xgboost-model")
        assert model_file is not None
        model_bytes = model_file.read()
    assert model_bytes.startswith(b"{")  # UBJSON object marker, as save_model writes it on 3.0.5
    booster = xgb.Booster(model_file=bytearray(model_bytes))
    expected, _ = oracle(abalone, early_stopping=True)
    assert booster.num_boosted_rounds() == expected.num_boosted_rounds()
    actual = booster.predict(xgb.DMatrix(test_features))
    assert np.array_equal(actual, expected.predict(xgb.DMatrix(test_features)))


def test_final_metrics_are_the_last_logged_values(
    trained: dict[str, Any], abalone: Abalone
) -> None:
    _, history = oracle(abalone, early_stopping=True)
    values = {m["MetricName"]: m["Value"] for m in trained["FinalMetricDataList"]}
    # SageMaker scrapes the last log line, i.e. the last round trained, at 5 decimals.
    assert values == {
        "train:rmse": round(history["train"]["rmse"][-1], 5),
        "validation:rmse": round(history["validation"]["rmse"][-1], 5),
    }


def test_batch_transform_joins_prediction_to_each_input_row(
    stack: Stack, deployed: str, abalone: Abalone, test_features: np.ndarray
) -> None:
    name = f"{JOB}-test"
    stack.sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=JOB,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{stack.bucket}/datasets/abalone/test.csv",
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{stack.bucket}/transform/{name}",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"},
    )
    job = wait_until(
        lambda: stack.sagemaker.describe_transform_job(TransformJobName=name),
        lambda described: described["TransformJobStatus"] not in ("InProgress", "Stopping"),
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")

    output = read_s3(stack, f"s3://{stack.bucket}/transform/{name}/test.csv.out").decode()
    expected = oracle_predictions(abalone)
    input_rows = Abalone.csv(abalone.test).decode().splitlines()
    assert output.splitlines() == [
        f"{row},{float(value)}" for row, value in zip(input_rows, expected, strict=True)
    ]


def test_transform_of_a_prefix_with_output_filter_keeps_label_and_prediction(
    stack: Stack, deployed: str, abalone: Abalone
) -> None:
    name = f"{JOB}-filtered"
    stack.sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=JOB,
        BatchStrategy="SingleRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{stack.bucket}/datasets/abalone/te",
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{stack.bucket}/filtered", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    job = wait_until(
        lambda: stack.sagemaker.describe_transform_job(TransformJobName=name),
        lambda described: described["TransformJobStatus"] not in ("InProgress", "Stopping"),
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    output = read_s3(stack, f"s3://{stack.bucket}/filtered/test.csv.out").decode()
    labels = abalone.test.iloc[:, 0].to_numpy()
    assert output.splitlines() == [
        f"{label},{float(value)}"
        for label, value in zip(labels, oracle_predictions(abalone), strict=True)
    ]


def test_describe_responses_carry_every_required_output_member(stack: Stack, deployed: str) -> None:
    model = service_model("sagemaker")
    calls = {
        "DescribeTrainingJob": {"TrainingJobName": JOB},
        "DescribeTransformJob": {"TransformJobName": f"{JOB}-test"},
        "DescribeModel": {"ModelName": JOB},
        "DescribeEndpointConfig": {"EndpointConfigName": f"{JOB}-serverless"},
        "DescribeEndpoint": {"EndpointName": deployed},
    }
    for operation, params in calls.items():
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
        response = getattr(stack.sagemaker, method)(**params)
        output_shape = model.operation_model(operation).output_shape
        assert output_shape is not None
        missing = set(output_shape.required_members) - set(response)
        assert not missing, f"{operation} lacks {missing}"


def test_invoke_endpoint_answers_byte_for_byte_like_the_container(
    stack: Stack, deployed: str, abalone: Abalone, test_features: np.ndarray
) -> None:
    body = abalone.test.iloc[:, 1:].to_csv(header=False, index=False)
    response = stack.runtime.invoke_endpoint(
        EndpointName=deployed, ContentType="text/csv", Accept="text/csv", Body=body
    )
    expected = oracle_predictions(abalone)
    assert response["Body"].read().decode() == container_text(expected)
    assert response["ContentType"] == "text/csv"
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_invoke_endpoint_json_accept(stack: Stack, deployed: str, abalone: Abalone) -> None:
    row = abalone.test.iloc[:1, 1:].to_csv(header=False, index=False)
    response = stack.runtime.invoke_endpoint(
        EndpointName=deployed, ContentType="text/csv", Accept="application/json", Body=row
    )
    payload = json.loads(response["Body"].read())
    assert list(payload) == ["predictions"]
    assert len(payload["predictions"]) == 1
    assert isinstance(payload["predictions"][0]["score"], float)


def test_update_endpoint_switches_to_the_new_model(
    stack: Stack, deployed: str, abalone: Abalone, test_features: np.ndarray
) -> None:
    second = run_training(
        stack, SECOND_JOB, {**HYPERPARAMETERS, "num_round": "5"} | {"early_stopping_rounds": "1000"}
    )
    assert second["TrainingJobStatus"] == "Completed", second.get("FailureReason")
    stack.sagemaker.create_model(
        ModelName=SECOND_JOB,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": second["ModelArtifacts"]["S3ModelArtifacts"],
        },
        ExecutionRoleArn=ROLE,
    )
    stack.sagemaker.create_endpoint_config(
        EndpointConfigName=f"{SECOND_JOB}-instances",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": SECOND_JOB,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    stack.sagemaker.update_endpoint(
        EndpointName=deployed, EndpointConfigName=f"{SECOND_JOB}-instances"
    )
    assert stack.sagemaker.describe_endpoint(EndpointName=deployed)["EndpointStatus"] in (
        "Updating",
        "InService",
    )
    described = wait_until(
        lambda: stack.sagemaker.describe_endpoint(EndpointName=deployed),
        lambda endpoint: endpoint["EndpointStatus"] != "Updating",
    )
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == f"{SECOND_JOB}-instances"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1

    body = abalone.test.iloc[:, 1:].to_csv(header=False, index=False)
    response = stack.runtime.invoke_endpoint(
        EndpointName=deployed, ContentType="text/csv", Body=body
    )
    expected = oracle_predictions(abalone, early_stopping=False)
    assert response["Body"].read().decode() == container_text(expected)


def test_lists_and_tags(stack: Stack, deployed: str, trained: dict[str, Any]) -> None:
    jobs = stack.sagemaker.list_training_jobs(NameContains="abalone-1")["TrainingJobSummaries"]
    assert [job["TrainingJobName"] for job in jobs] == [JOB]
    endpoints = stack.sagemaker.list_endpoints(StatusEquals="InService")["Endpoints"]
    assert deployed in [endpoint["EndpointName"] for endpoint in endpoints]
    arn = stack.sagemaker.describe_endpoint(EndpointName=deployed)["EndpointArn"]
    stack.sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "test"}])
    tags = stack.sagemaker.list_tags(ResourceArn=arn)["Tags"]
    assert {"Key": "stage", "Value": "test"} in tags
    assert {"Key": "project", "Value": "xgbpipe"} in tags


# ---------------------------------------------------------------------- events


def template_rule_patterns() -> dict[str, dict[str, Any]]:
    """Each EventBridgeRule event source of the template, `${JobPrefix}` at its default."""
    template = json.loads(json.dumps(load_cfn_yaml(str(TEMPLATE))))
    prefix = template["Parameters"]["JobPrefix"]["Default"]

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
                return re.sub(r"\$\{JobPrefix\}", prefix, node["Fn::Sub"])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    patterns = {}
    for name, resource in template["Resources"].items():
        for event_name, event in resource.get("Properties", {}).get("Events", {}).items():
            if event["Type"] == "EventBridgeRule":
                patterns[f"{name}-{event_name}"] = resolve(event["Properties"]["Pattern"])
    return patterns


def drain(stack: Stack, queue_url: str) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while True:
        messages = stack.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return received
        received += [json.loads(message["Body"]) for message in messages]
        for message in messages:
            stack.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(scope="module")
def template_queues(stack: Stack) -> dict[str, str]:
    """A queue behind each of the template's own rules, created before any job runs."""
    queues = {}
    for index, (name, pattern) in enumerate(sorted(template_rule_patterns().items())):
        url = stack.sqs.create_queue(QueueName=f"template-rule-{index}")["QueueUrl"]
        arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        stack.events.put_rule(Name=f"template-rule-{index}", EventPattern=json.dumps(pattern))
        stack.events.put_targets(Rule=f"template-rule-{index}", Targets=[{"Id": "q", "Arn": arn}])
        queues[name] = url
    return queues


@pytest.fixture(scope="module", autouse=True)
def _rules_first(template_queues: dict[str, str]) -> None:
    """Rules must exist before the first event, so every test module run starts with them."""


def test_events_have_the_aws_shapes_and_match_the_template_rules(
    stack: Stack, deployed: str, template_queues: dict[str, str]
) -> None:
    stack.sagemaker.delete_endpoint(EndpointName=deployed)
    seen: list[dict[str, Any]] = []

    def collect() -> dict[str, Any]:
        seen.extend(drain(stack, stack.events_queue_url))
        return {"statuses": [event["detail"].get("EndpointStatus") for event in seen]}

    wait_until(collect, lambda state: "DELETING" in state["statuses"], timeout=30)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in seen:
        by_type.setdefault(event["detail-type"], []).append(event)

    for event in seen:
        assert event["source"] == "aws.sagemaker"
        # EventBridge fills `account`; moto leaves it out, so it is not checked here.
        assert event["version"] == "0"
        assert event["id"]
        assert event["region"] == "us-east-1"
        assert len(event["resources"]) == 1

    endpoint_events = by_type["SageMaker Endpoint State Change"]
    assert [e["detail"]["EndpointStatus"] for e in endpoint_events][-1] == "DELETING"
    for event in endpoint_events:
        detail = event["detail"]
        assert set(detail) >= {
            "EndpointName",
            "EndpointArn",
            "EndpointConfigName",
            "ProductionVariants",
            "EndpointStatus",
            "CreationTime",
            "LastModifiedTime",
            "Tags",
        }
        assert isinstance(detail["CreationTime"], float)
        assert detail["Tags"]["project"] == "xgbpipe"
        assert event["resources"] == [detail["EndpointArn"]]

    rule_hits = {name: drain(stack, url) for name, url in template_queues.items()}
    training_hits = [
        event
        for name, hits in rule_hits.items()
        for event in hits
        if event["detail-type"] == "SageMaker Training Job State Change"
    ]
    assert sorted(e["detail"]["TrainingJobName"] for e in training_hits) == [JOB, SECOND_JOB]
    for event in training_hits:
        detail = event["detail"]
        assert detail["TrainingJobStatus"] == "Completed"
        assert detail["ModelArtifacts"]["S3ModelArtifacts"].endswith("/output/model.tar.gz")
        assert isinstance(detail["CreationTime"], int)
        assert detail["HyperParameters"]["num_round"] in ("40", "5")
    transform_hits = [
        event
        for hits in rule_hits.values()
        for event in hits
        if event["detail-type"] == "SageMaker Transform Job State Change"
    ]
    assert sorted(
        (e["detail"]["TransformJobName"], e["detail"]["TransformJobStatus"]) for e in transform_hits
    ) == [(f"{JOB}-filtered", "Completed"), (f"{JOB}-test", "Completed")]
    endpoint_hits = [
        e["detail"]["EndpointStatus"]
        for hits in rule_hits.values()
        for e in hits
        if e["detail-type"] == "SageMaker Endpoint State Change"
    ]
    assert endpoint_hits == ["CREATING", "IN_SERVICE", "UPDATING", "IN_SERVICE", "DELETING"]
