"""The local cloud wired from a copy of template.yaml, with throwaway handlers."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.local_cloud.conftest import StackFactory
from xgbpipe.local.cloud import LocalCloud, Ports

FAILING_HANDLER = """
def lambda_handler(event, context):
    raise RuntimeError("cannot deploy")
"""

NOTIFYING_HANDLER = """
import json, os
import boto3

def lambda_handler(event, context):
    boto3.client("sns").publish(TopicArn=os.environ["TOPIC_ARN"], Message=json.dumps(event))
    return {"published": True}
"""


class NoSageMaker:
    """The local SageMaker's place in the cloud, for tests that do not train."""

    url = "http://127.0.0.1:9"

    def __init__(self, **_: Any) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@pytest.fixture
def cloud(make_stack: StackFactory, tmp_path: Path) -> Iterator[LocalCloud]:
    template = make_stack({"deploy_model": FAILING_HANDLER, "track_endpoint": NOTIFYING_HANDLER})
    local_cloud = LocalCloud(
        template,
        tmp_path / "state",
        ports=Ports(0, 0, 0, 0),
        retry_delays=(0.01,),
        sagemaker_factory=NoSageMaker,
    )
    local_cloud.start()
    yield local_cloud
    local_cloud.stop()


def client(cloud: LocalCloud, service: str) -> Any:
    environment = cloud.environment()
    endpoint = environment.get(
        f"AWS_ENDPOINT_URL_{service.upper()}", environment["AWS_ENDPOINT_URL"]
    )
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
    )


def wait_until_idle(cloud: LocalCloud) -> None:
    deadline = time.monotonic() + 60
    time.sleep(0.3)  # let moto hand the messages to the queues
    while not cloud.idle():
        assert time.monotonic() < deadline, f"still busy: {cloud.runner.pending()}"
        time.sleep(0.1)


def recorded_events(cloud: LocalCloud, function_dir: str) -> list[dict[str, Any]]:
    table = cloud.wiring.tables[0].name if cloud.wiring else ""
    items = client(cloud, "dynamodb").scan(TableName=table)["Items"]
    return [json.loads(i["event"]["S"]) for i in items if i["model"]["S"] == function_dir]


def put_sagemaker_event(cloud: LocalCloud, detail_type: str, detail: dict[str, Any]) -> None:
    client(cloud, "events").put_events(
        Entries=[
            {"Source": "aws.sagemaker", "DetailType": detail_type, "Detail": json.dumps(detail)}
        ]
    )


def test_dropped_object_reaches_start_training_with_the_key_encoded_as_aws_does(
    cloud: LocalCloud,
) -> None:
    s3 = client(cloud, "s3")
    s3.put_object(Bucket=cloud.bucket, Key="datasets/my model/train.csv", Body=b"1,2\n")
    s3.put_object(Bucket=cloud.bucket, Key="elsewhere/train.csv", Body=b"1,2\n")
    wait_until_idle(cloud)

    (event,) = recorded_events(cloud, "start_training")
    (record,) = event["Records"]
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == cloud.bucket
    assert record["s3"]["object"]["key"] == "datasets/my+model/train.csv"


def test_rules_deliver_only_what_their_pattern_matches(cloud: LocalCloud) -> None:
    state_change = "SageMaker Training Job State Change"
    put_sagemaker_event(
        cloud, state_change, {"TrainingJobName": "xgbp-a", "TrainingJobStatus": "Completed"}
    )
    put_sagemaker_event(
        cloud, state_change, {"TrainingJobName": "other-a", "TrainingJobStatus": "Completed"}
    )
    put_sagemaker_event(
        cloud, state_change, {"TrainingJobName": "xgbp-b", "TrainingJobStatus": "InProgress"}
    )
    wait_until_idle(cloud)

    (event,) = recorded_events(cloud, "run_batch_transform")
    assert event["source"] == "aws.sagemaker"
    assert event["detail-type"] == state_change
    assert event["detail"]["TrainingJobName"] == "xgbp-a"


def test_failing_function_lands_on_the_failed_events_queue(cloud: LocalCloud) -> None:
    detail = {"TransformJobName": "xgbp-t", "TransformJobStatus": "Completed"}
    put_sagemaker_event(cloud, "SageMaker Transform Job State Change", detail)
    wait_until_idle(cloud)

    sqs = client(cloud, "sqs")
    messages = sqs.receive_message(QueueUrl=cloud.queue_urls["FailedEventsQueue"]).get(
        "Messages", []
    )
    (message,) = messages
    record = json.loads(message["Body"])
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith("DeployModelFunction:$LATEST")
    assert record["requestPayload"]["detail"] == detail
    assert record["responsePayload"]["errorMessage"] == "cannot deploy"


def test_notifications_can_be_read_from_the_topic_inbox(cloud: LocalCloud) -> None:
    put_sagemaker_event(cloud, "SageMaker Endpoint State Change", {"EndpointName": "xgbp-e"})
    wait_until_idle(cloud)

    inbox = cloud.notification_queue_urls["NotificationTopic"]
    (message,) = client(cloud, "sqs").receive_message(QueueUrl=inbox)["Messages"]
    assert json.loads(json.loads(message["Body"])["Message"])["detail"] == {
        "EndpointName": "xgbp-e"
    }


def test_lambda_invoke_api_runs_a_function(cloud: LocalCloud) -> None:
    response = client(cloud, "lambda").invoke(
        FunctionName="PredictFunction", Payload=json.dumps({"path": "/models/x"})
    )
    assert "FunctionError" not in response
    assert json.loads(json.loads(response["Payload"].read())["body"]) == {"seen": "/models/x"}

    failed = client(cloud, "lambda").invoke(FunctionName="xgbpipe-local-DeployModelFunction")
    assert failed["FunctionError"] == "Unhandled"


def test_api_gateway_serves_the_template_routes(cloud: LocalCloud) -> None:
    environment = cloud.environment()
    request = urllib.request.Request(
        f"{environment['XGBPIPE_API_URL']}/models/abalone",
        headers={"x-api-key": environment["XGBPIPE_API_KEY"]},
    )
    with urllib.request.urlopen(request) as response:
        assert json.loads(response.read()) == {"seen": "/models/abalone"}


def test_a_second_cloud_in_one_process_is_refused(cloud: LocalCloud, tmp_path: Path) -> None:
    second = LocalCloud(
        cloud.template_path,
        tmp_path / "second",
        ports=Ports(0, 0, 0, 0),
        sagemaker_factory=NoSageMaker,
    )
    with pytest.raises(RuntimeError, match="already running in this process"):
        second.start()

    assert client(cloud, "s3").head_bucket(Bucket=cloud.bucket)
