"""How a model's folder reads as a drop: single files, folders of parts and their markers."""

from __future__ import annotations

import pytest
from pipeline_common import drops
from pipeline_common.drops import Drop, Incomplete, read_drop
from pipeline_common.storage import StoredObject
from pipeline_common.validation import DropRejected

from xgbpipe.client import folder_etag


def listing(*names: str) -> list[StoredObject]:
    return [StoredObject(f"datasets/m/{name}", f"etag-{name}", 10, None) for name in names]


def test_single_files_make_the_notebook_drop() -> None:
    drop = read_drop("m", listing("train.csv", "validation.csv", "test.csv", "pipeline.json"))

    assert isinstance(drop, Drop)
    assert [c.source for c in drop.channels.values()] == ["train.csv", "validation.csv", "test.csv"]
    assert set(drop.settings) == {"pipeline.json"}
    # The run id of a single-file drop hashes the same pairs as before parts existed.
    assert drop.fingerprint() == {
        "pipeline.json": "etag-pipeline.json",
        "train.csv": "etag-train.csv",
        "validation.csv": "etag-validation.csv",
        "test.csv": "etag-test.csv",
    }


def test_a_folder_waits_for_its_marker() -> None:
    found = read_drop(
        "m", listing("train/part-1.csv", "train/part-0.csv.gz", "validation.csv", "test.csv")
    )

    assert found == Incomplete(("train/_SUCCESS",))


def test_parts_are_the_folders_data_files_in_key_order() -> None:
    drop = read_drop(
        "m",
        listing(
            "train/part-1.csv",
            "train/part-0.csv.gz",
            "train/_SUCCESS",
            "train/.crc",
            "train/_committed_1",
            "validation.csv",
            "test.csv",
        ),
    )

    assert isinstance(drop, Drop)
    train = drop.channels["train"]
    assert [train.part_name(p) for p in train.parts] == ["train/part-0.csv.gz", "train/part-1.csv"]
    assert [train.snapshot_name(p) for p in train.parts] == ["part-0.csv", "part-1.csv"]
    record = train.record()
    assert (record["key"], record["parts"], record["compressed_parts"]) == (
        "datasets/m/train/",
        2,
        1,
    )
    assert "train/part-0.csv.gz" in drop.fingerprint()


def test_one_marker_completes_every_folder_and_missing_channels_are_named() -> None:
    assert isinstance(
        read_drop("m", listing("train/a.csv", "validation/b.csv", "test/c.csv", "_SUCCESS")), Drop
    )
    found = read_drop("m", listing("train/a.csv", "_SUCCESS"))
    assert found == Incomplete(
        (
            "validation.csv (or validation/ parts and _SUCCESS)",
            "test.csv (or test/ parts and _SUCCESS)",
        )
    )


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        (("train.csv", "train/a.csv"), "train is dropped twice"),
        (("train/a.json", "train/_SUCCESS"), "train/a.json is not a part"),
        (("train/sub/a.csv", "train/_SUCCESS"), "train/sub/a.csv is not a part"),
        (("train/_SUCCESS",), "train/ is marked complete but holds no part files"),
        (("train/a.csv", "train/a.csv.gz", "train/_SUCCESS"), "a.csv both plain and gzip"),
    ],
)
def test_layouts_no_upload_completes_are_rejected(names: tuple[str, ...], reason: str) -> None:
    with pytest.raises(DropRejected, match=reason):
        read_drop("m", listing(*names, "validation.csv", "test.csv"))


def test_folder_keys_the_s3_console_makes_are_not_files() -> None:
    drop = read_drop(
        "m", listing("train/", "train/a.csv", "train/_SUCCESS", "validation.csv", "test.csv")
    )

    assert isinstance(drop, Drop)
    assert [p.key for p in drop.channels["train"].parts] == ["datasets/m/train/a.csv"]


def test_too_many_parts_are_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drops, "MAX_PARTS", 3)
    names = [f"train/p{i}.csv" for i in range(4)]

    with pytest.raises(DropRejected, match=r"train/ holds 4 parts.*coalesce"):
        read_drop("m", listing(*names, "train/_SUCCESS", "validation.csv", "test.csv"))


def test_the_client_names_a_folder_as_the_runs_table_records_it() -> None:
    # The client finds the run its upload started by the ETags the run records.
    drop = read_drop(
        "m",
        listing("train/b.csv.gz", "train/a.csv", "train/_SUCCESS", "validation.csv", "test.csv"),
    )

    assert isinstance(drop, Drop)
    parts = {"train/a.csv": "etag-train/a.csv", "train/b.csv.gz": "etag-train/b.csv.gz"}
    assert drop.channels["train"].record()["etag"] == folder_etag(parts)
