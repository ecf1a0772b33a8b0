"""Drops in parts with moto: folders of CSV or gzip parts, the _SUCCESS marker, instance counts,
sharding, the byte budget of validation and the transform of part files."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace
from typing import Any

import pytest
from pipeline_common import training

from functions.start_training.handler import lambda_handler
from tests.integration import flow
from tests.integration.conftest import BUCKET, Stack, abalone_like, s3_event


def split(text: str, parts: int) -> list[str]:
    lines = text.splitlines(keepends=True)
    return ["".join(lines[i::parts]) for i in range(parts)]


def parts_drop(
    files: dict[str, str], counts: dict[str, int], gzipped: bool = True
) -> dict[str, str | bytes]:
    """The drop with each channel as a folder of `counts[channel]` parts and its marker."""
    drop: dict[str, str | bytes] = {}
    for channel, parts in counts.items():
        for index, text in enumerate(split(files[f"{channel}.csv"], parts)):
            name = f"{channel}/part-{index:05d}.csv"
            drop[name + ".gz" if gzipped else name] = (
                gzip.compress(text.encode()) if gzipped else text
            )
        drop[f"{channel}/_SUCCESS"] = b""
    return drop


def start(stack: Stack, drop: dict[str, str | bytes], context: SimpleNamespace) -> dict[str, Any]:
    keys = stack.drop("abalone", drop)
    outcomes = lambda_handler(s3_event(keys), context)["outcomes"]
    started = [o for o in outcomes if o["action"] not in {"ignored", "waiting"}]
    assert len(started) == 1, outcomes
    return dict(started[0])


def uri(run_id: str, key: str) -> str:
    return f"s3://{BUCKET}/runs/abalone/{run_id}/input/{key}"


def test_gzip_parts_train_sharded_over_two_instances(
    stack: Stack, lambda_context: SimpleNamespace
) -> None:
    # Given gzip parts of every channel, each folder marked complete, and two instances asked
    files = abalone_like(120)
    drop = parts_drop(files, {"train": 4, "validation": 2, "test": 3})
    drop["pipeline.json"] = json.dumps(
        {"training_instance_count": 2, "transform_instance_count": 2}
    )

    # When the drop arrives
    outcome = start(stack, drop, lambda_context)

    # Then one job trains on two instances, each on its share of the train and validation parts
    assert outcome["action"] == "training_started"
    run_id = outcome["run_id"]
    (request,) = stack.requests("CreateTrainingJob")
    assert request["ResourceConfig"]["InstanceCount"] == 2
    sources = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in request["InputDataConfig"]
    }
    assert sources == {
        channel: {
            "S3DataType": "S3Prefix",
            "S3Uri": uri(run_id, f"{channel}/"),
            "S3DataDistributionType": "ShardedByS3Key",
        }
        for channel in ("train", "validation")
    }
    assert {c["CompressionType"] for c in request["InputDataConfig"]} == {"None"}
    # And the run's snapshot holds the parts decompressed, byte for byte
    for channel, count in (("train", 4), ("validation", 2), ("test", 3)):
        listed = stack.s3.list_objects_v2(
            Bucket=BUCKET, Prefix=f"runs/abalone/{run_id}/input/{channel}/"
        )["Contents"]
        snapshot = [
            stack.s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
            for item in listed
        ]
        assert [item["Key"].rpartition("/")[2] for item in listed] == [
            f"part-{i:05d}.csv" for i in range(count)
        ]
        assert snapshot == split(files[f"{channel}.csv"], count)
    run = stack.run("abalone", run_id)
    assert run["instance_counts"] == {"training": 2, "transform": 2}
    assert run["channels"]["test"] == {
        "key": f"runs/abalone/{run_id}/input/test/",
        "parts": 3,
    }
    assert run["inputs"]["train/"]["parts"] == 4
    assert run["inputs"]["train/"]["compressed_parts"] == 4
    assert run["validation"]["checked_bytes"] == run["validation"]["total_bytes"]

    # When training completes, the batch transform shares the test parts over two instances
    flow.training_changed("abalone", run_id, "Completed")
    (transform,) = stack.requests("CreateTransformJob")
    assert transform["TransformInput"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": uri(run_id, "test/"),
    }
    assert transform["TransformInput"]["SplitType"] == "Line"
    assert transform["TransformInput"]["CompressionType"] == "None"
    assert transform["TransformResources"]["InstanceCount"] == 2
    assert transform["TransformOutput"]["S3OutputPath"] == (
        f"s3://{BUCKET}/runs/abalone/{run_id}/transform"
    )


def test_scoring_reads_every_out_part(stack: Stack, lambda_context: SimpleNamespace) -> None:
    # Given a run of test parts whose transform wrote one .out per part
    drop = parts_drop(abalone_like(60), {"train": 2, "validation": 1, "test": 2}, gzipped=False)
    run_id = start(stack, drop, lambda_context)["run_id"]
    flow.training_changed("abalone", run_id, "Completed")
    rows = [f"{v},{','.join(['1'] * 8)},{v + (0.5 if v % 2 else 0)}" for v in range(10)]
    for index in range(2):
        stack.s3.put_object(
            Bucket=BUCKET,
            Key=f"runs/abalone/{run_id}/transform/part-{index:05d}.csv.out",
            Body="".join(f"{row}\n" for row in rows[index::2]).encode(),
        )

    # When the transform completes
    flow.transform_changed("abalone", run_id, "Completed")

    # Then every row of both parts is scored: half of them off by 0.5
    metrics = stack.run("abalone", run_id)["metrics"]
    assert metrics["rows"] == 10
    assert float(metrics["mae"]) == pytest.approx(0.25)


def test_instances_are_capped_by_the_parts_and_validation_is_copied_when_too_few(
    stack: Stack, lambda_context: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINING_INSTANCE_COUNT", "3")
    drop = parts_drop(abalone_like(60), {"train": 2, "validation": 1, "test": 1})

    start(stack, drop, lambda_context)

    (request,) = stack.requests("CreateTrainingJob")
    assert request["ResourceConfig"]["InstanceCount"] == 2
    distribution = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for c in request["InputDataConfig"]
    }
    assert distribution == {"train": "ShardedByS3Key", "validation": "FullyReplicated"}


def test_parts_without_their_marker_wait_and_the_drop_marker_completes_them(
    stack: Stack, lambda_context: SimpleNamespace
) -> None:
    files = abalone_like(60)
    drop = parts_drop(files, {"train": 2, "validation": 1, "test": 1})
    del drop["train/_SUCCESS"]
    keys = stack.drop("abalone", drop)

    waiting = lambda_handler(s3_event(keys), lambda_context)["outcomes"]

    assert {o["action"] for o in waiting} == {"ignored", "waiting"}
    assert "train/_SUCCESS" in next(o for o in waiting if o["action"] == "waiting")["detail"]
    assert stack.requests("CreateTrainingJob") == []
    # A marker for the whole drop completes every folder; parts and single files mix
    stack.s3.delete_object(Bucket=BUCKET, Key="datasets/abalone/test/part-00000.csv.gz")
    stack.s3.delete_object(Bucket=BUCKET, Key="datasets/abalone/test/_SUCCESS")
    keys = stack.drop("abalone", {"test.csv": files["test.csv"], "_SUCCESS": b""})
    (outcome,) = lambda_handler(s3_event(keys[-1:]), lambda_context)["outcomes"]
    assert outcome["action"] == "training_started"
    (request,) = stack.requests("CreateTrainingJob")
    assert request["ResourceConfig"]["InstanceCount"] == 1
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": uri(outcome["run_id"], "train/"),
        "S3DataDistributionType": "FullyReplicated",
    }


def _rejection(stack: Stack, context: SimpleNamespace, drop: dict[str, str | bytes]) -> str:
    jobs = len(stack.requests("CreateTrainingJob"))
    outcome = start(stack, drop, context)
    run = stack.run("abalone", outcome["run_id"])
    assert (run["status"], len(stack.requests("CreateTrainingJob"))) == ("invalid", jobs)
    return str(run["reason"])


BAD_LAYOUTS: dict[str, tuple[Any, str]] = {
    "both forms": (
        lambda d, f: {**d, "train.csv": f["train.csv"]},
        "train is dropped twice, as train.csv and as the folder train/",
    ),
    "not csv": (
        lambda d, f: {**d, "train/part-9.parquet": b"PAR1"},
        "train/part-9.parquet is not a part this pipeline reads",
    ),
    "not gzip": (
        lambda d, f: {**d, "train/part-9.csv.gz": b"1,2,3\n"},
        "train/part-9.csv.gz is named .gz but does not decompress",
    ),
    "gzip named csv": (
        lambda d, f: {**d, "train/part-9.csv": gzip.compress(b"1,2\n")},
        "train/part-9.csv is not a plain-text CSV file",
    ),
    "twins": (
        lambda d, f: {**d, "train/part-00000.csv": b"1,2\n"},
        "train/ holds part-00000.csv both plain and gzip-compressed",
    ),
    "columns differ": (
        lambda d, f: {**d, "train/part-9.csv": b"1,2,3\n"},
        "train/part-9.csv has 3 columns but train/part-00000.csv.gz has 9",
    ),
    "marker only": (
        lambda d, f: {
            k: v for k, v in d.items() if not k.startswith("test/") or k.endswith("_SUCCESS")
        },
        "test/ is marked complete but holds no part files",
    ),
    "empty parts": (
        lambda d, f: {
            **{k: v for k, v in d.items() if not k.startswith("test/")},
            "test/part-0.csv": b"",
            "test/_SUCCESS": b"",
        },
        "test/ is empty",
    ),
    "bad row in a later part": (
        lambda d, f: {**d, "validation/part-7.csv": b"1," + b"2," * 7 + b"x\n"},
        "validation/part-7.csv line 1, column 9: 'x' is not a number",
    ),
}


def test_too_much_gzip_is_refused_before_any_work(
    stack: Stack, lambda_context: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "MAX_DECOMPRESSED_BYTES", 100)
    drop = parts_drop(abalone_like(60), {"train": 2, "validation": 1, "test": 1})

    reason = _rejection(stack, lambda_context, drop)

    assert "upload the parts uncompressed" in reason
    listed = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/")
    assert "Contents" not in listed


@pytest.mark.parametrize("case", BAD_LAYOUTS)
def test_bad_layouts_are_rejected_with_the_part_named(
    stack: Stack, lambda_context: SimpleNamespace, case: str
) -> None:
    files = abalone_like(60)
    change, reason = BAD_LAYOUTS[case]
    drop = change(parts_drop(files, {"train": 2, "validation": 1, "test": 1}), files)

    assert reason in _rejection(stack, lambda_context, drop)


def test_validation_past_the_byte_budget_checks_heads_and_leaves_the_rest_to_the_job(
    stack: Stack, lambda_context: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "HEAD_BYTES", 200)
    monkeypatch.setattr(training, "VALIDATION_BYTE_BUDGET", 1000)
    files = abalone_like(300)
    drop = parts_drop(files, {"train": 3, "validation": 1, "test": 1}, gzipped=False)
    # A fault deep in a part passes (the job finds it); one in a part's first bytes does not
    drop["train/part-00001.csv"] = str(drop["train/part-00001.csv"]) + "1,2,3\n"

    outcome = start(stack, drop, lambda_context)

    assert outcome["action"] == "training_started"
    checked = stack.run("abalone", outcome["run_id"])["validation"]
    assert int(checked["checked_bytes"]) < int(checked["total_bytes"])
    assert "the training job reads the rest" in checked["note"]
    late = {**drop, "train/part-00002.csv": "1,2,3\n" + str(drop["train/part-00002.csv"])}
    reason = _rejection(stack, lambda_context, late)
    assert "train/part-00002.csv line 2 has 9 fields but line 1 has 3" in reason


def test_a_test_set_sorted_by_label_is_not_refused_on_its_first_bytes(
    stack: Stack, lambda_context: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "HEAD_BYTES", 100)
    monkeypatch.setattr(training, "VALIDATION_BYTE_BUDGET", 500)
    rows = [f"{label},{x / 100},{(x * 7) % 13}" for label in (0, 1) for x in range(60)]
    text = "".join(f"{row}\n" for row in rows)
    drop: dict[str, str | bytes] = {
        "train.csv": text,
        "validation.csv": text,
        "test/part-0.csv": text,
        "test/_SUCCESS": b"",
        "hyperparameters.json": json.dumps({"objective": "binary:logistic"}),
    }

    assert start(stack, drop, lambda_context)["action"] == "training_started"


def test_a_bad_line_is_named_by_its_output_and_its_own_line(
    stack: Stack, lambda_context: SimpleNamespace
) -> None:
    drop = parts_drop(abalone_like(60), {"train": 2, "validation": 1, "test": 2}, gzipped=False)
    run_id = start(stack, drop, lambda_context)["run_id"]
    flow.training_changed("abalone", run_id, "Completed")
    good = f"1,{','.join(['1'] * 8)},1\n"
    for index, body in enumerate((good * 3, good + f"1,{','.join(['1'] * 8)},oops\n")):
        stack.s3.put_object(
            Bucket=BUCKET,
            Key=f"runs/abalone/{run_id}/transform/part-{index:05d}.csv.out",
            Body=body.encode(),
        )

    flow.transform_changed("abalone", run_id, "Completed")

    run = stack.run("abalone", run_id)
    assert run["status"] == "failed"
    assert "part-00001.csv.out: Line 2: the prediction 'oops' is not a number" in run["reason"]


def test_empty_parts_are_left_out_and_do_not_count_as_instances_work(
    stack: Stack, lambda_context: SimpleNamespace
) -> None:
    files = abalone_like(60)
    drop = parts_drop(files, {"train": 2, "validation": 1, "test": 1}, gzipped=False)
    drop["train/part-00002.csv"] = b""
    drop["train/part-00003.csv.gz"] = gzip.compress(b"")
    drop["pipeline.json"] = json.dumps({"training_instance_count": 4})

    run_id = start(stack, drop, lambda_context)["run_id"]

    (request,) = stack.requests("CreateTrainingJob")
    assert request["ResourceConfig"]["InstanceCount"] == 2
    listed = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"runs/abalone/{run_id}/input/train/")
    assert [o["Key"].rpartition("/")[2] for o in listed["Contents"]] == [
        "part-00000.csv",
        "part-00001.csv",
        "part-00003.csv",
    ]


def test_gzip_that_decompresses_past_the_limit_is_refused_midway(
    stack: Stack, lambda_context: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = abalone_like(60)
    drop = parts_drop(files, {"train": 2, "validation": 1, "test": 1})
    drop["train/part-00009.csv.gz"] = gzip.compress(files["train.csv"].encode() * 50)
    compressed = sum(len(v) for k, v in drop.items() if k.endswith(".gz"))
    monkeypatch.setattr(training, "MAX_DECOMPRESSED_BYTES", compressed * 3)

    reason = _rejection(stack, lambda_context, drop)

    assert "decompress to more than" in reason
    assert "upload the parts uncompressed" in reason


def test_a_test_set_too_large_to_score_is_refused(
    stack: Stack, lambda_context: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "MAX_TEST_BYTES", 100)
    drop = parts_drop(abalone_like(60), {"train": 2, "validation": 1, "test": 1})

    assert "sample it below" in _rejection(stack, lambda_context, drop)


def test_a_first_row_longer_than_the_share_read_is_read_whole(
    stack: Stack, lambda_context: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training, "HEAD_BYTES", 50)
    monkeypatch.setattr(training, "VALIDATION_BYTE_BUDGET", 10)
    wide = "".join(f"{i % 2}," + ",".join(["0.5"] * 60) + "\n" for i in range(40))
    drop: dict[str, str | bytes] = {
        "train/part-0.csv": wide,
        "train/_SUCCESS": b"",
        "validation.csv": wide,
        "test.csv": wide,
    }

    assert start(stack, drop, lambda_context)["action"] == "training_started"
    monkeypatch.setattr(training, "WIDE_ROW_BYTES", 100)
    assert "has a first row longer than" in _rejection(
        stack, lambda_context, {**drop, "hyperparameters.json": "{}"}
    )
