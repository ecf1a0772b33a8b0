"""A drop of gzip parts on the local cloud: two training instances, two transform instances,
and a score equal to scikit-learn's on the joined outputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from tests.e2e.conftest import Stack
from tests.e2e.test_client import xgbpipe

pytestmark = pytest.mark.e2e

MODEL = "abalone-parts"
PARTS = {"train": 4, "validation": 2, "test": 3}


def gzip_parts(files: dict[str, str]) -> dict[str, bytes | str]:
    """Each channel as gzip parts, uploaded before its folder's _SUCCESS marker."""
    drop: dict[str, bytes | str] = {
        "hyperparameters.json": files["hyperparameters.json"],
        "pipeline.json": json.dumps({"training_instance_count": 2, "transform_instance_count": 2}),
    }
    for channel, count in PARTS.items():
        lines = files[f"{channel}.csv"].splitlines(keepends=True)
        for index in range(count):
            part = "".join(lines[index::count]).encode()
            drop[f"{channel}/part-{index:05d}.csv.gz"] = gzip.compress(part)
        drop[f"{channel}/_SUCCESS"] = b""
    return drop


def test_gzip_parts_train_and_transform_on_two_instances_each(
    stack: Stack, old_abalone_files: dict[str, str], tmp_path: Path
) -> None:
    # Given a binary drop in gzip parts that asks for two instances per job
    stack.drop(MODEL, gzip_parts(old_abalone_files))

    # When the markers arrive, the chain runs to a deployed model
    run = stack.wait_for_run(MODEL)["latest_run"]
    assert run["status"] == "deployed", run

    # Then training ran on two instances, each on its own half of the train parts
    sagemaker = stack.client("sagemaker")
    job = f"xgbp-{MODEL}-{run['run_id']}"
    training = sagemaker.describe_training_job(TrainingJobName=job)
    assert training["ResourceConfig"]["InstanceCount"] == 2
    assert {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for c in training["InputDataConfig"]
    } == {"train": "ShardedByS3Key", "validation": "ShardedByS3Key"}
    seen = host_files(stack, "/aws/sagemaker/TrainingJobs", job)
    assert seen == {
        "algo-1": {"train": ["part-00000.csv", "part-00002.csv"], "validation": ["part-00000.csv"]},
        "algo-2": {"train": ["part-00001.csv", "part-00003.csv"], "validation": ["part-00001.csv"]},
    }
    # And the batch transform shared the three test parts between two instances
    transform = sagemaker.describe_transform_job(TransformJobName=job)
    assert transform["TransformResources"]["InstanceCount"] == 2

    # And the gate's AUC is scikit-learn's on the three joined outputs put together
    s3 = stack.client("s3")
    prefix = f"runs/{MODEL}/{run['run_id']}/transform/"
    outputs = s3.list_objects_v2(Bucket=stack.cloud.bucket, Prefix=prefix)["Contents"]
    assert [o["Key"].removeprefix(prefix) for o in outputs] == [
        f"part-{i:05d}.csv.out" for i in range(PARTS["test"])
    ]
    rows = [
        [float(v) for v in line.split(",")]
        for o in outputs
        for line in s3.get_object(Bucket=stack.cloud.bucket, Key=o["Key"])["Body"]
        .read()
        .decode()
        .splitlines()
    ]
    labels, scores = [r[0] for r in rows], [r[-1] for r in rows]
    assert len(rows) == len(old_abalone_files["test.csv"].splitlines())
    assert run["metrics"]["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert run["metrics"]["accuracy"] == pytest.approx(
        accuracy_score(labels, [s > 0.5 for s in scores]), abs=1e-12
    )
    # And the client's report reads the three outputs as one
    reported = xgbpipe(stack, "report", run["run_id"], "--out", str(tmp_path))
    assert reported.exit_code == 0, reported.output
    assert (tmp_path / "report.png").stat().st_size > 0


def host_files(stack: Stack, group: str, job: str) -> dict[str, dict[str, list[str]]]:
    """Which files of each channel every host received, from the job's CloudWatch log streams."""
    logs = stack.client("logs")
    seen: dict[str, dict[str, list[str]]] = {}
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
    for stream in streams["logStreams"]:
        host = stream["logStreamName"].split("/")[1].rsplit("-", 1)[0]
        events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])
        for event in events["events"]:
            message = event["message"]
            if message.startswith("Files of channel "):
                channel = message.split()[3]
                files = message.partition(": ")[2]
                seen.setdefault(host, {})[channel] = files.split(", ") if files else []
    return seen


def test_the_client_uploads_folders_of_parts_in_place_of_an_earlier_upload(
    stack: Stack, abalone_files: dict[str, str], tmp_path: Path
) -> None:
    # Given a directory with train/ and test/ as parts, validation.csv as one file, and an
    # earlier upload's part still in the bucket
    model = "abalone-folders"
    for channel, count in (("train", 2), ("test", 2)):
        folder = tmp_path / channel
        folder.mkdir()
        lines = abalone_files[f"{channel}.csv"].splitlines(keepends=True)
        for index in range(count):
            part = "".join(lines[index::count]).encode()
            (folder / f"part-{index}.csv.gz").write_bytes(gzip.compress(part))
    (tmp_path / "validation.csv").write_text(abalone_files["validation.csv"])
    stack.drop(model, {"train/part-old.csv": "1,2\n"})

    # When the client uploads it
    uploaded = xgbpipe(stack, "upload", str(tmp_path), "--model", model)

    # Then it names the run its upload started, which trains on exactly the directory's parts
    assert uploaded.exit_code == 0, uploaded.output
    run = stack.wait_for_run(model)["latest_run"]
    assert f"Run {run['run_id']}" in uploaded.output
    assert run["status"] == "deployed", run
    listed = stack.client("s3").list_objects_v2(
        Bucket=stack.cloud.bucket, Prefix=f"runs/{model}/{run['run_id']}/input/train/"
    )
    assert [o["Key"].rpartition("/")[2] for o in listed["Contents"]] == [
        "part-0.csv",
        "part-1.csv",
    ]
