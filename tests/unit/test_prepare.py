"""`xgbpipe prepare`: the seed's split, one-hot encoding, schema.json and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from xgbpipe.cli import app
from xgbpipe.prepare import PrepareError, Schema, prepare

ROOT = Path(__file__).resolve().parents[2]
ABALONE = ROOT / "examples" / "abalone.csv"


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, header=None)


def test_abalone_gets_the_seeds_split_sizes_and_a_schema(tmp_path: Path) -> None:
    prepared = prepare(ABALONE, tmp_path, label="rings")

    sizes = {name: len(read(path)) for name, path in prepared.files().items()}
    # 4177 rows: 30% test (1254), then 30% of the remaining 2923 for validation (877).
    assert sizes == {"train.csv": 2046, "validation.csv": 877, "test.csv": 1254}
    schema = json.loads((tmp_path / "schema.json").read_text())
    assert schema["label"] == "rings"
    assert schema["objective"] == "reg:squarederror"
    assert schema["encodings"] == {"sex": ["F", "I", "M"]}
    assert schema["features"][-3:] == ["sex_F", "sex_I", "sex_M"]
    train = read(prepared.train)
    assert train.shape[1] == 1 + len(schema["features"])
    # Exactly one of the one-hot columns is set on every row.
    assert (train.iloc[:, -3:].sum(axis=1) == 1).all()
    assert prepared.hyperparameters is None


def test_the_same_seed_gives_the_same_split_and_another_seed_another(tmp_path: Path) -> None:
    first = prepare(ABALONE, tmp_path / "a", random_state=7)
    again = prepare(ABALONE, tmp_path / "b", random_state=7)
    other = prepare(ABALONE, tmp_path / "c", random_state=8)

    assert first.test.read_bytes() == again.test.read_bytes()
    assert first.test.read_bytes() != other.test.read_bytes()


def test_a_text_label_is_classified_and_split_by_class(tmp_path: Path) -> None:
    raw = pd.read_csv(ABALONE)
    raw["age"] = pd.cut(raw.pop("rings"), [0, 8, 11, 100], labels=["young", "adult", "old"])
    source = tmp_path / "raw.csv"
    raw.to_csv(source, index=False)

    prepared = prepare(source, tmp_path / "out", label="age")

    assert prepared.schema.objective == "multi:softprob"
    assert prepared.schema.classes == ["adult", "old", "young"]
    hyperparameters = json.loads((tmp_path / "out" / "hyperparameters.json").read_text())
    assert hyperparameters == {"objective": "multi:softprob", "num_class": 3}
    shares = [read(path)[0].value_counts(normalize=True) for path in prepared.files().values()]
    for share in shares[1:]:
        assert (share - shares[0]).abs().max() < 0.01  # stratified: the same mix everywhere


def test_named_records_encode_to_the_rows_prepare_wrote(tmp_path: Path) -> None:
    prepared = prepare(ABALONE, tmp_path)
    raw = pd.read_csv(ABALONE)
    record = raw.iloc[0].to_dict()

    (row,) = prepared.schema.encode([record])

    numeric = [record[name] for name in prepared.schema.features[:-3]]
    assert row == [*numeric, 0.0, 0.0, 1.0]  # the first abalone is male


def test_records_with_unknown_or_non_numeric_features_are_refused() -> None:
    schema = Schema(
        label="y", objective="reg:squarederror", features=["a", "c_x"], encodings={"c": ["x"]}
    )

    with pytest.raises(PrepareError, match=r"record 1: unknown feature\(s\) b"):
        schema.encode([{"a": 1, "b": 2}])
    with pytest.raises(PrepareError, match="record 2: a must be a number"):
        schema.encode([{"a": 1}, {"a": "big"}])
    assert schema.encode([{"c": "x"}]) == [[None, 1.0]]


@pytest.mark.parametrize(
    ("csv_text", "label", "message"),
    [
        ("", None, "is empty"),
        ("a,b\n1,2\n3,4\n", "y", "no label column 'y'"),
        ("a,b,y\n" + ",1,2\n" * 12, "y", "column 'a' is empty"),
        ("a,y\n1,2\n2,\n" * 6, "y", "missing on 6 rows"),
        ("a,y\n1,2\n2,3\n", "y", "too few to split"),
        (
            "id,y\n" + "".join(f"name{i},{i}\n" for i in range(60)),
            "y",
            "column 'id' is not numeric and has 60 distinct values",
        ),
    ],
)
def test_bad_raw_data_is_refused_with_what_to_fix(
    tmp_path: Path, csv_text: str, label: str | None, message: str
) -> None:
    source = tmp_path / "raw.csv"
    source.write_text(csv_text)

    with pytest.raises(PrepareError, match=message):
        prepare(source, tmp_path / "out", label=label)


def test_the_cli_reports_a_bad_file_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["prepare", str(tmp_path / "missing.csv"), str(tmp_path)])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "cannot read" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_cli_prints_the_files_and_the_next_step(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["prepare", str(ABALONE), str(tmp_path), "--seed", "3"])

    assert result.exit_code == 0, result.output
    assert "test.csv" in result.output
    assert "1254 rows" in result.output
    # One line however long the path, so the command can be copied as it is.
    assert f"Next: xgbpipe upload {tmp_path} --model NAME\n" in result.output


def test_true_false_columns_become_numbers_and_an_old_hyperparameters_file_goes(
    tmp_path: Path,
) -> None:
    raw = pd.read_csv(ABALONE)
    raw["adult"] = raw["sex"] != "I"
    source = tmp_path / "raw.csv"
    raw.to_csv(source, index=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "hyperparameters.json").write_text('{"objective": "binary:logistic"}')

    prepared = prepare(source, out, label="rings")

    assert set(read(prepared.train)[prepared.schema.features.index("adult") + 1]) <= {0.0, 1.0}
    assert not (out / "hyperparameters.json").exists()
    assert "hyperparameters.json" not in prepared.upload_files()
