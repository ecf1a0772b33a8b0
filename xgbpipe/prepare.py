"""Raw tabular data into the built-in XGBoost's CSV format, split the way the seed does.

Text columns are one-hot encoded (abalone's `sex` becomes `sex_F`, `sex_I`, `sex_M`), the label
goes first, no header, no index; the rows are split 70/30 into train+validation and test, then
70/30 again into train and validation, stratified by class for classification. test.csv keeps its
label in column 0 because the stack scores itself (InputFilter "$[1:]").

`schema.json` records what the model's columns mean, so later commands can turn named features
back into rows and name the features in a report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

RANDOM_STATE = 42
TEST_SIZE = 0.3
# The smallest table whose three parts all get rows: test 30%, validation 21%, train 49%.
MIN_ROWS = 10
# More distinct values than this in a text column is an identifier or free text, not a category.
MAX_CATEGORIES = 50
REGRESSION = "reg:squarederror"
SCHEMA_FILE = "schema.json"
HYPERPARAMETERS_FILE = "hyperparameters.json"


class PrepareError(ValueError):
    """Raw data that cannot be prepared; the message says what to fix."""


@dataclass(frozen=True)
class Schema:
    """The meaning of a prepared model's columns: label, features in order, their encodings."""

    label: str
    objective: str
    features: list[str]
    # Text column -> its categories, each a one-hot feature named "<column>_<category>".
    encodings: dict[str, list[str]] = field(default_factory=dict)
    # Classification: the label's values, by class index.
    classes: list[str] | None = None

    @property
    def num_class(self) -> int | None:
        return len(self.classes) if self.classes else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> Schema:
        try:
            text = path.read_text()
        except OSError as error:
            raise PrepareError(f"cannot read {path}: {error}") from None
        return cls.from_json(text, str(path))

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> Schema:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as error:
            raise PrepareError(
                f"{source} is not a schema.json written by `prepare`: {error}"
            ) from None

    def encode(self, records: Iterable[Mapping[str, Any]]) -> list[list[float | None]]:
        """Named-feature records -> rows in the model's column order (None: missing value)."""
        one_hot = {
            f"{column}_{value}": (column, value)
            for column, values in self.encodings.items()
            for value in values
        }
        known = set(self.encodings) | {f for f in self.features if f not in one_hot}
        rows = []
        for number, record in enumerate(records, start=1):
            unknown = sorted(set(record) - known - {self.label})
            if unknown:
                raise PrepareError(
                    f"record {number}: unknown feature(s) {', '.join(unknown)}; "
                    f"the model knows {', '.join(sorted(known))}"
                )
            row: list[float | None] = []
            for name in self.features:
                if name in one_hot:
                    column, category = one_hot[name]
                    row.append(1.0 if str(record.get(column)) == category else 0.0)
                else:
                    row.append(_number(record.get(name), number, name))
            rows.append(row)
        return rows


def _number(value: Any, number: int, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PrepareError(f"record {number}: {name} must be a number, not {value!r}") from None


@dataclass(frozen=True)
class PreparedData:
    train: Path
    validation: Path
    test: Path
    schema: Schema
    schema_path: Path
    hyperparameters: Path | None = None

    def files(self) -> dict[str, Path]:
        """The data files of a drop, in the stack's names."""
        return {"train.csv": self.train, "validation.csv": self.validation, "test.csv": self.test}

    def upload_files(self) -> dict[str, Path]:
        """Everything `upload` puts under datasets/<model>/."""
        extra = {HYPERPARAMETERS_FILE: self.hyperparameters} if self.hyperparameters else {}
        return {**extra, SCHEMA_FILE: self.schema_path, **self.files()}


def is_classification(objective: str) -> bool:
    return objective.startswith(("binary:", "multi:"))


def to_builtin_format(
    raw: pd.DataFrame, label: str, objective: str | None = None
) -> tuple[pd.DataFrame, Schema]:
    """Numeric columns, label first, text columns one-hot encoded; and the schema that says so."""
    if label not in raw.columns:
        raise PrepareError(f"no label column {label!r}; the columns are {', '.join(raw.columns)}")
    for column in raw.columns:
        if raw[column].isna().all():
            raise PrepareError(f"column {column!r} is empty; drop it or fill it")
    missing_labels = int(raw[label].isna().sum())
    if missing_labels:
        raise PrepareError(f"the label {label!r} is missing on {missing_labels} rows; drop them")
    target, classes, objective = _encode_label(raw[label], objective)
    features = raw.drop(columns=[label])
    encodings = {}
    for column in features.columns:
        if pd.api.types.is_bool_dtype(features[column]):
            features[column] = features[column].astype(float)  # 0/1, not True/False in the CSV
            continue
        if pd.api.types.is_numeric_dtype(features[column]):
            continue
        values = features[column].dropna().astype(str)
        categories = sorted(values.unique())
        if len(categories) > MAX_CATEGORIES:
            raise PrepareError(
                f"column {column!r} is not numeric and has {len(categories)} distinct values "
                f"(more than {MAX_CATEGORIES} for a category); drop it or encode it first"
            )
        encodings[str(column)] = categories
    encoded = pd.get_dummies(
        features.astype({c: str for c in encodings}).where(features.notna()),
        columns=list(encodings),
        dtype=float,
    )
    frame = pd.concat([target.rename(label), encoded], axis=1)
    schema = Schema(
        label=label,
        objective=objective,
        features=[str(c) for c in encoded.columns],
        encodings=encodings,
        classes=classes,
    )
    return frame, schema


def _encode_label(
    values: pd.Series, objective: str | None
) -> tuple[pd.Series, list[str] | None, str]:
    numeric = pd.api.types.is_numeric_dtype(values)
    if objective is None:
        if numeric:
            return values.astype(float), None, REGRESSION
        objective = "binary:logistic" if values.nunique() == 2 else "multi:softprob"
    if not is_classification(objective):
        if not numeric:
            raise PrepareError(
                f"the label {values.name!r} is text, so it cannot be the target of {objective}; "
                "pass a classification objective (binary:logistic, multi:softprob)"
            )
        return values.astype(float), None, objective
    classes = sorted(values.astype(str).unique(), key=_class_order)
    if objective.startswith("binary:") and len(classes) != 2:
        raise PrepareError(
            f"{objective} needs a label with two values; {values.name!r} has {len(classes)}"
        )
    index = {value: position for position, value in enumerate(classes)}
    return values.astype(str).map(index).astype(int), classes, objective


def _class_order(value: str) -> tuple[int, float | str]:
    """Numeric labels in numeric order (0 before 1 before 10), text after in text order."""
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def split(
    frame: pd.DataFrame, random_state: int = RANDOM_STATE, stratify: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) as the seed splits: test_size 0.3, then 0.3 of the rest."""
    if len(frame) < MIN_ROWS:
        raise PrepareError(f"{len(frame)} rows are too few to split; it takes at least {MIN_ROWS}")
    label = frame.columns[0]
    try:
        rest, test = train_test_split(
            frame,
            test_size=TEST_SIZE,
            random_state=random_state,
            stratify=frame[label] if stratify else None,
        )
        train, validation = train_test_split(
            rest,
            test_size=TEST_SIZE,
            random_state=random_state,
            stratify=rest[label] if stratify else None,
        )
    except ValueError as error:
        raise PrepareError(f"cannot split the classes evenly: {error}") from None
    return train, validation, test


def prepare(
    raw_csv: Path,
    out_dir: Path,
    label: str | None = None,
    objective: str | None = None,
    random_state: int = RANDOM_STATE,
) -> PreparedData:
    """Write train.csv, validation.csv, test.csv and schema.json, and hyperparameters.json for any
    objective but the default regression; the label defaults to the last column."""
    try:
        raw = pd.read_csv(raw_csv)
    except pd.errors.EmptyDataError:
        raise PrepareError(f"{raw_csv} is empty; it needs a header row and data rows") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise PrepareError(f"cannot read {raw_csv} as CSV: {error}") from None
    frame, schema = to_builtin_format(raw, label or str(raw.columns[-1]), objective)
    out_dir.mkdir(parents=True, exist_ok=True)
    schema_path = out_dir / SCHEMA_FILE
    schema_path.write_text(schema.to_json())
    hyperparameters = None
    # A file from an earlier prepare into this folder must not ride along with this drop.
    (out_dir / HYPERPARAMETERS_FILE).unlink(missing_ok=True)
    if schema.objective != REGRESSION:
        hyperparameters = out_dir / HYPERPARAMETERS_FILE
        settings: dict[str, Any] = {"objective": schema.objective}
        if schema.objective.startswith("multi:"):
            settings["num_class"] = schema.num_class
        hyperparameters.write_text(json.dumps(settings, indent=2) + "\n")
    prepared = PreparedData(
        out_dir / "train.csv",
        out_dir / "validation.csv",
        out_dir / "test.csv",
        schema,
        schema_path,
        hyperparameters,
    )
    parts = split(frame, random_state, stratify=is_classification(schema.objective))
    for part, path in zip(parts, prepared.files().values(), strict=True):
        part.to_csv(path, header=False, index=False)
    return prepared
