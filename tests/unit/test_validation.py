"""Validating a drop's CSV files before training."""

from pathlib import Path

import pytest
from pipeline_common.hyperparameters import ResolvedHyperparameters, resolve_hyperparameters
from pipeline_common.validation import CsvProfile, DropRejected, check_drop, profile_csv

ABALONE = Path("/work/shared/datasets/abalone.csv")


def file_lines(text: str | bytes) -> list[bytes]:
    """The lines as a file iterator yields them, line endings kept."""
    data = text.encode() if isinstance(text, str) else text
    return data.splitlines(keepends=True)


def profile(text: str | bytes, name: str = "train.csv") -> CsvProfile:
    return profile_csv(name, file_lines(text))


def test_profile_summarises_rows_columns_and_labels() -> None:
    result = profile("3,0.5,1\n1,0.25,2\n2,,3\n")

    assert result == CsvProfile(
        name="train.csv",
        rows=3,
        columns=3,
        label_min=1.0,
        label_max=3.0,
        labels_integral=True,
        distinct_labels=frozenset({1.0, 2.0, 3.0}),
    )


@pytest.mark.parametrize(
    "text",
    [
        "1,2\n0,3\n",  # trailing newline
        "1,2\n0,3",  # none
        "1,2\r\n0,3\r\n",  # CRLF
        "1,2\n0,3\n\n\n",  # blank trailing lines
        "1,2\r\n0,3\r\n\r\n",  # blank trailing CRLF line
        "1, 2\n0 ,3\n",  # spaces around numbers, which XGBoost skips
    ],
)
def test_line_endings_and_trailing_blank_lines_are_accepted(text: str) -> None:
    result = profile(text)

    assert (result.rows, result.columns) == (2, 2)


def test_lines_without_endings_as_iter_lines_yields_them() -> None:
    result = profile_csv("train.csv", [b"1,2", b"0,3", b""])

    assert (result.rows, result.columns) == (2, 2)


def test_empty_and_nan_feature_fields_are_missing_values() -> None:
    result = profile("1,,3\n0,nan,\n1,NaN,4\n")

    assert result.rows == 3


def test_labels_that_are_not_integers_are_noted() -> None:
    result = profile("1.5,1\n2,1\n")

    assert result.labels_integral is False
    assert (result.label_min, result.label_max) == (1.5, 2.0)


def test_distinct_labels_are_dropped_beyond_1000() -> None:
    # Given a regression label with 1001 distinct values
    text = "".join(f"{i / 10},1\n" for i in range(1001))

    # Then the profile keeps the range but not the set
    result = profile(text)
    assert result.distinct_labels is None
    assert (result.label_min, result.label_max) == (0.0, 100.0)


def test_profile_reads_a_generator_once() -> None:
    lines = (f"{i % 7},{i},{i * 2}\n".encode() for i in range(10_000))

    result = profile_csv("train.csv", lines)

    assert result.rows == 10_000
    assert result.distinct_labels == frozenset(float(i) for i in range(7))


INVALID_FILES = [
    pytest.param(b"", "train.csv is empty", id="empty"),
    pytest.param(
        b"rings,length,diameter\n15,0.455,0.365\n",
        "train.csv line 1 looks like a header row ('rings,length,diameter'); the built-in "
        "XGBoost algorithm reads every line as data and wants no header",
        id="header",
    ),
    pytest.param(
        b",a,b\n1,2,3\n",
        "train.csv line 1 looks like a header row",
        id="pandas-index-header",
    ),
    pytest.param(
        b"\xef\xbb\xbf1,2\n0,3\n",
        "train.csv starts with a UTF-8 byte order mark (BOM)",
        id="bom",
    ),
    pytest.param(
        b"\x1f\x8b\x08\x00\x00\x00",
        "train.csv is not a plain-text CSV file (it looks compressed or binary)",
        id="gzip",
    ),
    pytest.param(
        b"1;2;3\n0;1;2\n",
        "train.csv line 1 separates fields with semicolons; this pipeline needs commas",
        id="semicolons",
    ),
    pytest.param(b"1\t2\n", "train.csv line 1 separates fields with tabs", id="tabs"),
    pytest.param(
        b"1,2,3\n0,abc,4\n",
        "train.csv line 2, column 2: 'abc' is not a number",
        id="non-numeric-feature",
    ),
    pytest.param(
        b"1,2,3\nyes,1,4\n",
        "train.csv line 2, column 1: 'yes' is not a number",
        id="non-numeric-label",
    ),
    pytest.param(
        b"1,2,3\n0,1_000,4\n",
        "train.csv line 2, column 2: '1_000' is not a number",
        id="underscore-digits",
    ),
    pytest.param(
        b"1,2,3\n0,1,2,3\n",
        "train.csv line 2 has 4 fields but line 1 has 3",
        id="ragged",
    ),
    pytest.param(b"1\n2\n", "train.csv has only 1 column", id="one-column"),
    pytest.param(
        b"1,2\n,3\n",
        "train.csv line 2: the label (column 1) is empty",
        id="empty-label",
    ),
    pytest.param(
        b"1,2\nnan,3\n",
        "train.csv line 2: the label (column 1) is 'nan'; labels must be finite numbers",
        id="nan-label",
    ),
    pytest.param(
        b"1,2\n-inf,3\n",
        "train.csv line 2: the label (column 1) is '-inf'",
        id="inf-label",
    ),
    pytest.param(
        b"1,2\n0,inf\n",
        "train.csv line 2, column 2: 'inf' is infinite or too large for XGBoost's 32-bit floats",
        id="inf-feature",
    ),
    pytest.param(
        b"1,2\n0,1e39\n",
        "train.csv line 2, column 2: '1e39' is infinite or too large",
        id="float32-overflow",
    ),
    pytest.param(
        b"1,2\n1e39,3\n",
        "train.csv line 2: the label (column 1) is '1e39'; labels must be finite numbers within "
        "32-bit float range",
        id="label-overflow",
    ),
    pytest.param(
        b"1,2\n\n0,3\n",
        "train.csv line 2 is blank but more rows follow",
        id="blank-line-between-rows",
    ),
]


@pytest.mark.parametrize(("data", "reason"), INVALID_FILES)
def test_invalid_files_are_rejected_with_their_own_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DropRejected) as rejected:
        profile_csv("train.csv", file_lines(data))

    assert reason in str(rejected.value)


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n\r\n", b"  \n"])
def test_a_file_without_rows_is_empty(data: bytes) -> None:
    with pytest.raises(DropRejected, match=r"^train\.csv is empty; it needs rows"):
        profile_csv("train.csv", file_lines(data))


def test_the_raw_abalone_file_is_rejected_for_its_header() -> None:
    # Given the UCI file as downloaded, before the notebook's "prepare" step
    with ABALONE.open("rb") as raw, pytest.raises(DropRejected) as rejected:
        profile_csv("abalone.csv", raw)

    # Then the user learns to drop the header, not that "sex" is not a number
    assert "abalone.csv line 1 looks like a header row" in str(rejected.value)


def test_prepared_abalone_profiles_like_the_notebook_data() -> None:
    # Given abalone prepared as the notebook does: rings first, sex one-hot encoded, no header
    rows = ABALONE.read_text().splitlines()[1:]
    prepared = []
    for row in rows:
        sex, *measurements, rings = row.split(",")
        one_hot = ["1" if sex == s else "0" for s in "MFI"]
        prepared.append(",".join([rings, *one_hot, *measurements]) + "\n")

    result = profile_csv("train.csv", (line.encode() for line in prepared))

    assert (result.rows, result.columns) == (4177, 11)
    assert (result.label_min, result.label_max) == (1.0, 29.0)
    assert result.labels_integral


def csv_profile(
    name: str = "train.csv",
    columns: int = 5,
    labels: set[float] | None = None,
    label_range: tuple[float, float] | None = None,
) -> CsvProfile:
    labels = {0.0, 1.0} if labels is None and label_range is None else labels
    low, high = label_range or (min(labels or {0.0}), max(labels or {0.0}))
    return CsvProfile(
        name=name,
        rows=100,
        columns=columns,
        label_min=low,
        label_max=high,
        labels_integral=labels is not None and all(x.is_integer() for x in labels),
        distinct_labels=None if labels is None else frozenset(labels),
    )


def drop(
    hyperparameters: dict | None = None, **profiles: CsvProfile
) -> tuple[CsvProfile, CsvProfile, CsvProfile, ResolvedHyperparameters]:
    return (
        profiles.get("train", csv_profile("train.csv")),
        profiles.get("validation", csv_profile("validation.csv")),
        profiles.get("test", csv_profile("test.csv")),
        resolve_hyperparameters(hyperparameters),
    )


def test_check_drop_returns_the_feature_count() -> None:
    train, validation, test, hp = drop()

    assert check_drop(train, validation, test, hp) == 4


BINARY = {"objective": "binary:logistic"}
MULTI = {"objective": "multi:softmax", "num_class": 3}

VALID_DROPS = [
    pytest.param(BINARY, {}, id="binary-0-1"),
    pytest.param(MULTI, {"train": csv_profile(labels={0.0, 1.0, 2.0})}, id="multiclass-0-to-2"),
    pytest.param(
        {"objective": "reg:gamma"},
        {p: csv_profile(f"{p}.csv", label_range=(0.5, 9)) for p in ("train", "validation", "test")},
        id="gamma-positive",
    ),
    pytest.param(
        {"objective": "reg:tweedie"},
        {p: csv_profile(f"{p}.csv", label_range=(0, 9)) for p in ("train", "validation", "test")},
        id="tweedie-zero",
    ),
    pytest.param(
        {"objective": "binary:logistic", "eval_metric": "logloss"},
        {"validation": csv_profile("validation.csv", labels={1.0})},
        id="one-class-validation-without-auc",
    ),
    pytest.param(
        {},
        {
            p: csv_profile(f"{p}.csv", label_range=(-5, 1e6))
            for p in ("train", "validation", "test")
        },
        id="regression-any-labels",
    ),
]


@pytest.mark.parametrize(("hyperparameters", "profiles"), VALID_DROPS)
def test_valid_drops_pass(hyperparameters: dict, profiles: dict[str, CsvProfile]) -> None:
    train, validation, test, hp = drop(hyperparameters, **profiles)

    assert check_drop(train, validation, test, hp) == 4


INVALID_DROPS = [
    pytest.param(
        {},
        {"validation": csv_profile("validation.csv", columns=6)},
        "validation.csv has 6 columns but train.csv has 5",
        id="validation-width",
    ),
    pytest.param(
        {},
        {"test": csv_profile("test.csv", columns=4)},
        "test.csv has 4 columns but train.csv has 5",
        id="test-width",
    ),
    pytest.param(
        BINARY,
        {"train": csv_profile(labels={0.0, 1.0, 2.0})},
        "train.csv: objective binary:logistic needs labels 0 or 1, but found 2",
        id="binary-label-2",
    ),
    pytest.param(
        {"objective": "binary:hinge"},
        {"validation": csv_profile("validation.csv", labels={-1.0, 1.0})},
        "validation.csv: objective binary:hinge needs labels 0 or 1, but found -1",
        id="binary-minus-one",
    ),
    pytest.param(
        BINARY,
        {"train": csv_profile(label_range=(0, 1))},
        "needs labels 0 or 1, but found more than 1000 distinct values",
        id="binary-continuous",
    ),
    pytest.param(
        MULTI,
        {"train": csv_profile(labels={0.0, 1.5})},
        "train.csv: objective multi:softmax needs integer class labels 0 to 2, but some labels "
        "are not integers such as 1.5",
        id="multiclass-fraction",
    ),
    pytest.param(
        MULTI,
        {"test": csv_profile("test.csv", labels={1.0, 2.0, 3.0})},
        "test.csv: labels run from 1 to 3, but num_class 3 allows 0 to 2",
        id="multiclass-from-1",
    ),
    pytest.param(
        {"objective": "reg:logistic"},
        {"train": csv_profile(label_range=(0, 2))},
        "train.csv: label must be in [0,1] for logistic regression (reg:logistic)",
        id="logistic-above-1",
    ),
    pytest.param(
        {"objective": "count:poisson"},
        {"train": csv_profile(label_range=(-1, 5))},
        "PoissonRegression: label must be nonnegative",
        id="poisson-negative",
    ),
    pytest.param(
        {"objective": "reg:tweedie"},
        {"train": csv_profile(label_range=(-0.5, 5))},
        "TweedieRegression: label must be nonnegative",
        id="tweedie-negative",
    ),
    pytest.param(
        {"objective": "reg:gamma"},
        {"train": csv_profile(label_range=(0, 5))},
        "label must be positive for gamma regression",
        id="gamma-zero",
    ),
    pytest.param(
        {"objective": "reg:squaredlogerror"},
        {"train": csv_profile(label_range=(-1, 5))},
        "label must be greater than -1 for rmsle",
        id="rmsle-minus-one",
    ),
    pytest.param(
        BINARY,
        {"test": csv_profile("test.csv", labels={1.0})},
        "test.csv holds only label 1 rows, but the gate judges the model by AUC on it, which "
        "needs both; include rows of label 0 and of label 1",
        id="binary-test-one-class",
    ),
    pytest.param(
        BINARY,
        {"train": csv_profile(labels={1.0})},
        "train.csv holds only label 1 rows, but a classifier needs examples of both classes",
        id="binary-train-one-class",
    ),
    pytest.param(
        BINARY,
        {"validation": csv_profile("validation.csv", labels={0.0})},
        "validation.csv holds only label 0 rows, but early stopping watches AUC on it, which "
        "needs both",
        id="binary-validation-one-class",
    ),
]


@pytest.mark.parametrize(("hyperparameters", "profiles", "reason"), INVALID_DROPS)
def test_invalid_drops_are_rejected_with_their_own_reason(
    hyperparameters: dict, profiles: dict[str, CsvProfile], reason: str
) -> None:
    train, validation, test, hp = drop(hyperparameters, **profiles)

    with pytest.raises(DropRejected) as rejected:
        check_drop(train, validation, test, hp)

    assert reason in str(rejected.value)


def test_every_invalid_upload_has_a_distinct_reason() -> None:
    reasons = [case.values[-1] for case in INVALID_FILES + INVALID_DROPS]

    assert len(set(reasons)) == len(reasons) >= 12
