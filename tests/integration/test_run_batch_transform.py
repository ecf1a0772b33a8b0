"""run_batch_transform with moto: a finished training job becomes a model and a transform job."""

from __future__ import annotations

from tests.integration.conftest import BUCKET, IMAGE, ROLE_ARN, Stack, abalone_like
from tests.integration.flow import job, start, training_changed


def test_completed_training_creates_one_model_and_one_joined_transform_job(stack: Stack) -> None:
    # Given a run whose training job finished
    run_id = start(stack, "abalone", abalone_like(30))
    name = job("abalone", run_id)
    prefix = f"s3://{BUCKET}/runs/abalone/{run_id}"

    # When the state change arrives, twice (EventBridge delivers at least once)
    first = training_changed("abalone", run_id, "Completed")
    second = training_changed("abalone", run_id, "Completed")

    # Then one model from the job's artifact and one transform job that joins label and prediction;
    # the second delivery asks for the same two again, as a retry after a crash would, and
    # SageMaker's name check refuses them
    assert (first["action"], second["action"]) == ("transform_started", "transform_already_started")
    tags = [
        {"Key": "xgbpipe:model", "Value": "abalone"},
        {"Key": "xgbpipe:run-id", "Value": run_id},
    ]
    model, model_again = stack.requests("CreateModel")
    assert model_again == model
    assert model == {
        "ModelName": name,
        "PrimaryContainer": {
            "Image": IMAGE,
            "ModelDataUrl": f"{prefix}/training/{name}/output/model.tar.gz",
        },
        "ExecutionRoleArn": ROLE_ARN,
        "Tags": tags,
    }
    transform, transform_again = stack.requests("CreateTransformJob")
    assert transform_again == transform
    assert transform == {
        "TransformJobName": name,
        "ModelName": name,
        "MaxPayloadInMB": 6,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{prefix}/input/test.csv"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": f"{prefix}/transform",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$"},
        "Tags": tags,
    }
    run = stack.run("abalone", run_id)
    assert (run["stage"], run["transform_job"]) == ("transforming", name)


def test_failed_training_is_recorded_and_announced_once(stack: Stack) -> None:
    run_id = start(stack, "abalone", abalone_like(30))
    reason = "AlgorithmError: framework error: num_round must be positive"

    first = training_changed("abalone", run_id, "Failed", FailureReason=reason)
    second = training_changed("abalone", run_id, "Failed", FailureReason=reason)

    assert (first["action"], second["action"]) == ("failed", "duplicate")
    run = stack.run("abalone", run_id)
    assert (run["status"], run["reason"]) == ("failed", f"training failed: {reason}")
    (notification,) = stack.notifications()
    assert notification["status"] == "failed"
    assert reason in notification["reason"]
    assert stack.requests("CreateModel") == stack.requests("CreateTransformJob") == []


def test_stopped_training_ends_the_run(stack: Stack) -> None:
    run_id = start(stack, "abalone", abalone_like(30))

    outcome = training_changed("abalone", run_id, "Stopped")

    assert outcome["action"] == "stopped"
    assert stack.run("abalone", run_id)["status"] == "stopped"


def test_jobs_of_other_owners_are_ignored(stack: Stack) -> None:
    outcome = training_changed("abalone", "nothex", "Completed", TrainingJobName="someone-else")

    assert outcome["action"] == "ignored"
    assert stack.sagemaker_requests == []
