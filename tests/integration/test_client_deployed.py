"""The client against a deployed stack: found by name through CloudFormation, in moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from xgbpipe import client
from xgbpipe.cli import app

REGION = "eu-west-1"


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A stack with the outputs `sam deploy` gives ours, and a model with one deployed run."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "XGBPIPE_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        key = boto3.client("apigateway", region_name=REGION).create_api_key(
            name="predict", enabled=True, value="k" * 40
        )
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket="xgbdev-data", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        table = boto3.resource("dynamodb", region_name=REGION).create_table(
            TableName="xgbdev-runs",
            KeySchema=[
                {"AttributeName": "model", "KeyType": "HASH"},
                {"AttributeName": "run_id", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "model", "AttributeType": "S"},
                {"AttributeName": "run_id", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        table.put_item(Item={"model": "abalone", "run_id": "_model", "latest_run_id": "a" * 12})
        table.put_item(
            Item={
                "model": "abalone",
                "run_id": "a" * 12,
                "stage": "done",
                "status": "deployed",
                "created_at": "2026-11-25T00:00:00.000Z",
            }
        )
        outputs = {
            "DataBucketName": "xgbdev-data",
            "ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
            "ApiKeyId": key["id"],
            "RunsTableName": "xgbdev-runs",
        }
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName="xgbdev", TemplateBody=json.dumps(template)
        )
        yield "xgbdev"


def test_a_deployed_stack_is_found_by_its_name(deployed: str) -> None:
    stack = client.find_stack(deployed, local=False, region=REGION)

    assert stack.bucket == "xgbdev-data"
    assert stack.runs_table == "xgbdev-runs"
    assert stack.api_url.endswith("/v1")
    assert stack.api_key == "k" * 40
    assert [run["run_id"] for run in client.list_runs(stack, "abalone")] == ["a" * 12]


def test_status_reads_the_deployed_stacks_runs(deployed: str) -> None:
    result = CliRunner().invoke(app, ["status", "abalone", "--stack", deployed, "--region", REGION])

    assert result.exit_code == 0, result.output
    assert "aaaaaaaaaaaa" in result.output
    assert "deployed" in result.output


def test_upload_goes_to_the_deployed_bucket(deployed: str, tmp_path: Path) -> None:
    for name in ("train.csv", "validation.csv", "test.csv"):
        (tmp_path / name).write_text("1,2\n")
    stack = client.find_stack(deployed, local=False, region=REGION)

    drop = client.upload(stack, "abalone", client.drop_files(tmp_path))

    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="xgbdev-data")["Contents"]]
    assert sorted(keys) == [
        f"datasets/abalone/{n}" for n in ("test.csv", "train.csv", "validation.csv")
    ]
    assert set(drop.etags) == {"train.csv", "validation.csv", "test.csv"}
    assert drop.leftovers == ()


def test_an_unknown_stack_is_one_line(deployed: str) -> None:
    result = CliRunner().invoke(app, ["status", "--stack", "nope", "--region", REGION])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().startswith("error: cannot read stack nope:")
    assert len(result.output.strip().splitlines()) == 1


def test_an_earlier_hyperparameters_file_is_part_of_the_drop_and_named(
    deployed: str, tmp_path: Path
) -> None:
    for name in ("train.csv", "validation.csv", "test.csv"):
        (tmp_path / name).write_text("1,2\n")
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket="xgbdev-data", Key="datasets/abalone/hyperparameters.json", Body=b"{}")
    stack = client.find_stack(deployed, local=False, region=REGION)

    drop = client.upload(stack, "abalone", client.drop_files(tmp_path))

    # The stack names the run after every trigger file in the folder, so the client matches all.
    assert set(drop.etags) == {"train.csv", "validation.csv", "test.csv", "hyperparameters.json"}
    assert drop.leftovers == ("hyperparameters.json",)


def test_an_upload_s3_refuses_is_one_line(deployed: str, tmp_path: Path) -> None:
    for name in ("train.csv", "validation.csv", "test.csv"):
        (tmp_path / name).write_text("1,2\n")
    boto3.client("s3", region_name=REGION).delete_bucket(Bucket="xgbdev-data")

    result = CliRunner().invoke(
        app,
        ["upload", str(tmp_path), "--model", "abalone", "--stack", deployed, "--region", REGION],
    )

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "cannot upload" in result.output
    assert len(result.output.strip().splitlines()) == 1
