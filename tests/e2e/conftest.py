"""One local cloud per test module, wired from the real template.yaml, running the real code."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from xgbpipe.client import ModelApi
from xgbpipe.local.cloud import LocalCloud, Ports
from xgbpipe.local.runner import DUMMY_CREDENTIALS
from xgbpipe.local.state import StateFiles
from xgbpipe.prepare import prepare, split, to_builtin_format

ROOT = Path(__file__).resolve().parents[2]
ABALONE = ROOT / "examples" / "abalone.csv"
RUN_TIMEOUT_SECONDS = 180.0


@dataclass
class Stack:
    """The local cloud and the clients a test drives it with."""

    cloud: LocalCloud
    api: ModelApi
    work_dir: Path

    def client(self, service: str) -> Any:
        environment = self.cloud.environment()
        endpoint = environment["AWS_ENDPOINT_URL"]
        if service.startswith("sagemaker"):
            endpoint = environment["AWS_ENDPOINT_URL_SAGEMAKER"]
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=endpoint,
            region_name=environment["AWS_REGION"],
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        )

    def drop(self, model: str, files: Mapping[str, bytes | str]) -> None:
        """Upload the files in order, as a user would (the stack starts when all are there)."""
        s3 = self.client("s3")
        for name, body in files.items():
            data = body.encode() if isinstance(body, str) else body
            s3.put_object(Bucket=self.cloud.bucket, Key=f"datasets/{model}/{name}", Body=data)

    def notifications(self) -> list[dict[str, Any]]:
        """The messages the topic sent since the last read, each read once."""
        sqs = self.client("sqs")
        url = self.cloud.notification_queue_urls["NotificationTopic"]
        received = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                received.append(json.loads(json.loads(message["Body"])["Message"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return received

    def latest_run(self, model: str) -> dict[str, Any] | None:
        description = self.api.describe(model)
        return (description or {}).get("latest_run")

    def wait_for_run(self, model: str, after: str | None = None) -> dict[str, Any]:
        """The model's description once a run other than `after` is done and all is quiet."""
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            description = self.api.describe(model) or {}
            run = description.get("latest_run") or {}
            if run.get("run_id") not in (None, after) and run.get("stage") == "done":
                live = description.get("live") or {}
                deployed = run.get("status") == "deployed"
                if (not deployed or live.get("version") == run["run_id"]) and self.cloud.idle():
                    return description
            time.sleep(0.5)
        raise AssertionError(f"no finished run of {model} within {RUN_TIMEOUT_SECONDS}s")

    def wait_until_idle(self) -> None:
        time.sleep(1.0)  # moto hands notifications and events to the queues asynchronously
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while not self.cloud.idle():
            assert time.monotonic() < deadline, f"still busy: {self.cloud.runner.pending()}"
            time.sleep(0.2)


@contextmanager
def local_stack(
    state_dir: Path, parameter_overrides: dict[str, str] | None = None
) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as environment:
        # As `xgbpipe local up` does: the local SageMaker's boto3 clients find dummy credentials.
        for name, value in DUMMY_CREDENTIALS.items():
            environment.setenv(name, value)
        cloud = LocalCloud(
            ROOT / "template.yaml",
            state_dir,
            ports=Ports(0, 0, 0, 0),
            parameter_overrides=parameter_overrides,
        )
        cloud.start()
        # As the supervisor does, so the client's verbs find this cloud with --state-dir.
        files = StateFiles(state_dir)
        files.publish(cloud.state(os.getpid()))
        try:
            yield Stack(cloud, ModelApi(cloud.api_url, cloud.api_key), state_dir)
        finally:
            files.remove_runtime_files()
            cloud.stop()


# Per module, not per session: with xdist a worker runs other files between ours, and those
# may start their own moto in this process, which shares state with ours.
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("local-cloud")) as started:
        yield started


def csv_text(frame: pd.DataFrame) -> str:
    return str(frame.to_csv(header=False, index=False))


@pytest.fixture(scope="session")
def abalone_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    prepared = prepare(ABALONE, tmp_path_factory.mktemp("abalone"))
    return {name: path.read_text() for name, path in prepared.files().items()}


@pytest.fixture(scope="session")
def old_abalone_files() -> dict[str, str]:
    """Binary classification: is an abalone older than 9 rings?"""
    frame, _ = to_builtin_format(pd.read_csv(ABALONE), "rings")
    frame["rings"] = (frame["rings"] > 9).astype(int)
    train, validation, test = split(frame)
    hyperparameters = {"objective": "binary:logistic", "eval_metric": "auc"}
    return {
        "hyperparameters.json": json.dumps(hyperparameters),
        "train.csv": csv_text(train),
        "validation.csv": csv_text(validation),
        "test.csv": csv_text(test),
    }
