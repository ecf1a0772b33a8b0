"""Check a drop's CSV files before any job starts, so a bad upload fails in seconds with a reason.

The built-in algorithm reads CSV with the label in the first column, no header and commas between
fields; it fails late and cryptically (or, worse, trains on garbage) when a file breaks that.
`profile_csv` streams one file (or the first bytes of one) in a single pass, `merge_profiles`
sums a channel's parts, and `check_drop` compares the three channels and checks the labels
against the objective. A profile of part of the data is `complete=False`: what it found is a
fault, but a label missing from it may still come later, so those checks wait for the job.
"""

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pipeline_common.hyperparameters import ResolvedHyperparameters
from pipeline_common.problem import ProblemType


class DropRejected(ValueError):
    """A drop that must not be trained on; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class CsvProfile:
    name: str
    rows: int
    columns: int
    label_min: float
    label_max: float
    labels_integral: bool
    distinct_labels: frozenset[float] | None  # None when there are more than MAX_DISTINCT_LABELS
    complete: bool = True  # False: only the first bytes were read


MAX_DISTINCT_LABELS = 1000
FLOAT32_MAX = 3.4028234663852886e38  # XGBoost stores every value as a 32-bit float
_PREVIEW_CHARS = 40
_AUC_METRICS = frozenset({"auc", "aucpr"})
# float() accepts what XGBoost's parser would misread or the pipeline refuses: "1_000" (XGBoost
# reads 1), "nan" and "inf"; a line holding "_", "n" or "N" takes the field-by-field path.
_NEEDS_CAREFUL_PARSE = re.compile(rb"[_nN]")


def profile_csv(
    name: str, lines: Iterable[bytes], *, complete: bool = True, part: bool = False
) -> CsvProfile:
    """Validate one CSV file line by line and summarise it; raise DropRejected on the first fault.

    `lines` may keep or drop their line endings (`\\n` or `\\r\\n`), as botocore's `iter_lines`
    does. Blank lines are allowed only at the end. A `part` may be empty (Spark writes empty
    partitions); its channel as a whole may not (see `merge_profiles`).
    """
    rows = columns = 0
    label_min, label_max = math.inf, -math.inf
    labels_integral = True
    distinct: set[float] | None = set()
    blank_line: int | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            blank_line = blank_line or number
            continue
        if blank_line is not None:
            raise DropRejected(
                f"{name} line {blank_line} is blank but more rows follow; "
                "remove blank lines between rows."
            )
        fields = line.split(b",")
        if rows == 0:
            _check_first_line(name, line)
            columns = len(fields)
            if columns < 2:
                raise DropRejected(
                    f"{name} has only 1 column; it needs the label in the first column followed by "
                    "at least one feature column, separated by commas."
                )
        elif len(fields) != columns:
            raise DropRejected(
                f"{name} line {number} has {len(fields)} fields but line 1 has {columns}; every "
                "row needs the same number of columns (leave a field empty for a missing value)."
            )
        label = _row_label(name, number, line, fields)
        rows += 1
        label_min = min(label_min, label)
        label_max = max(label_max, label)
        labels_integral = labels_integral and label.is_integer()
        if distinct is not None:
            distinct.add(label)
            if len(distinct) > MAX_DISTINCT_LABELS:
                distinct = None
    if rows == 0 and complete and not part:  # read in part, the first row may just be long
        raise _empty(name)
    return CsvProfile(
        name=name,
        rows=rows,
        columns=columns,
        label_min=label_min,
        label_max=label_max,
        labels_integral=labels_integral,
        distinct_labels=None if distinct is None else frozenset(distinct),
        complete=complete,
    )


def _empty(name: str) -> DropRejected:
    return DropRejected(f"{name} is empty; it needs rows of label,feature,... values.")


def merge_profiles(name: str, parts: Sequence[CsvProfile]) -> CsvProfile:
    """One profile of a channel's parts, which must all have the same columns."""
    rows = [part for part in parts if part.rows]
    if not rows:
        raise _empty(name)
    first = rows[0]
    for part in rows[1:]:
        if part.columns != first.columns:
            raise DropRejected(
                f"{part.name} has {part.columns} columns but {first.name} has {first.columns}; "
                "every part needs the label first and then the same features in the same order."
            )
    distinct: set[float] | None = set()
    for part in rows:
        if distinct is None or part.distinct_labels is None:
            distinct = None
        else:
            distinct |= part.distinct_labels
    if distinct is not None and len(distinct) > MAX_DISTINCT_LABELS:
        distinct = None
    return CsvProfile(
        name=name,
        rows=sum(part.rows for part in rows),
        columns=first.columns,
        label_min=min(part.label_min for part in rows),
        label_max=max(part.label_max for part in rows),
        labels_integral=all(part.labels_integral for part in rows),
        distinct_labels=None if distinct is None else frozenset(distinct),
        complete=all(part.complete for part in parts),
    )


def check_drop(
    train: CsvProfile,
    validation: CsvProfile,
    test: CsvProfile,
    hyperparameters: ResolvedHyperparameters,
) -> int:
    """Check the three files agree with each other and with the objective.

    Returns the number of features (columns after the label).
    """
    for profile in (validation, test):
        if profile.columns != train.columns:
            raise DropRejected(
                f"{profile.name} has {profile.columns} columns but {train.name} has "
                f"{train.columns}; all three files need the label first and then the same "
                "features in the same order."
            )
    for profile in (train, validation, test):
        _check_labels(profile, hyperparameters)
    if hyperparameters.problem is ProblemType.BINARY:
        eval_metric = hyperparameters.values.get("eval_metric", hyperparameters.eval_metric)
        _require_both_classes(train, "a classifier needs examples of both classes to learn")
        if {m.partition("@")[0] for m in eval_metric.split(",")} & _AUC_METRICS:
            _require_both_classes(validation, "early stopping watches AUC on it, which needs both")
        _require_both_classes(test, "the gate judges the model by AUC on it, which needs both")
    return train.columns - 1


def _preview(field: bytes) -> str:
    """The field as the user would see it, quoted; bytes that are not UTF-8 shown as \\xNN."""
    text = field.decode("utf-8", "backslashreplace")
    return f"'{text if len(text) <= _PREVIEW_CHARS else f'{text[:_PREVIEW_CHARS]}...'}'"


def _check_first_line(name: str, line: bytes) -> None:
    if line.startswith(b"\xef\xbb\xbf"):
        raise DropRejected(
            f"{name} starts with a UTF-8 byte order mark (BOM), which the built-in XGBoost "
            "algorithm reads as part of the first label; save it as plain CSV without BOM."
        )
    if line.startswith((b"\x1f\x8b", b"PK\x03\x04")) or b"\x00" in line:
        raise DropRejected(
            f"{name} is not a plain-text CSV file (it looks compressed or binary); upload it "
            "uncompressed, as comma-separated text."
        )
    if b"," not in line:
        for delimiter, label in ((b";", "semicolons"), (b"\t", "tabs")):
            if delimiter in line:
                raise DropRejected(
                    f"{name} line 1 separates fields with {label}; this pipeline needs commas "
                    "(batch transform and the prediction API split rows on commas)."
                )
    fields = line.split(b",")
    if b'"' in line and all(_is_number(field.strip(b'" ')) for field in fields):
        raise _quoted(name, 1)
    has_text = any(field.strip() and not _is_number(field) for field in fields)
    if has_text and not _is_number(fields[0]):
        raise DropRejected(
            f"{name} line 1 looks like a header row ({_preview(line)}); the built-in XGBoost "
            "algorithm reads every line as data and wants no header: delete the first line."
        )


def _is_number(field: bytes) -> bool:
    if b"_" in field:
        return False
    try:
        float(field)
    except ValueError:
        return False
    return True


def _quoted(name: str, number: int) -> DropRejected:
    return DropRejected(
        f"{name} line {number} has quoted fields; the built-in XGBoost algorithm does not strip "
        "quotes, so save the CSV without quoting (pandas: to_csv(..., quoting=csv.QUOTE_NONE))."
    )


def _not_a_number(name: str, number: int, column: int, field: bytes) -> DropRejected:
    if b'"' in field:
        return _quoted(name, number)
    return DropRejected(
        f"{name} line {number}, column {column}: {_preview(field)} is not a number; every field "
        "must be numeric (leave a feature field empty for a missing value)."
    )


def _row_label(name: str, number: int, line: bytes, fields: list[bytes]) -> float:
    """Check every field of a row and return its label."""
    if not _NEEDS_CAREFUL_PARSE.search(line):
        # Fast path for a plain numeric row: one C-level pass converts and range-checks it all.
        try:
            values = list(map(float, fields))
        except ValueError:
            pass  # an empty or non-numeric field, which the careful path names
        else:
            if max(values) <= FLOAT32_MAX and min(values) >= -FLOAT32_MAX:
                return values[0]
    label = _label(name, number, fields[0])
    _check_features(name, number, fields)
    return label


def _label(name: str, number: int, field: bytes) -> float:
    if not field.strip():
        raise DropRejected(
            f"{name} line {number}: the label (column 1) is empty; every row needs a label."
        )
    if not _is_number(field):
        raise _not_a_number(name, number, 1, field)
    label = float(field)
    if not math.isfinite(label) or abs(label) > FLOAT32_MAX:
        raise DropRejected(
            f"{name} line {number}: the label (column 1) is {_preview(field)}; labels must be "
            "finite numbers within 32-bit float range."
        )
    return label


def _check_features(name: str, number: int, fields: list[bytes]) -> None:
    for column, field in enumerate(fields[1:], start=2):
        if not field.strip():
            continue  # a missing value, which XGBoost handles
        if not _is_number(field):
            raise _not_a_number(name, number, column, field)
        value = float(field)
        if math.isinf(value) or abs(value) > FLOAT32_MAX:
            raise DropRejected(
                f"{name} line {number}, column {column}: {_preview(field)} is infinite or too "
                "large for XGBoost's 32-bit floats; leave the field empty if the value is missing."
            )


def _sample(labels: Iterable[float]) -> str:
    shown = sorted(labels)[:5]
    return ", ".join(f"{label:g}" for label in shown)


def _check_labels(profile: CsvProfile, hyperparameters: ResolvedHyperparameters) -> None:
    objective = hyperparameters.objective
    if hyperparameters.problem is ProblemType.BINARY:
        _check_binary_labels(profile, objective)
    elif hyperparameters.problem is ProblemType.MULTICLASS:
        _check_class_labels(profile, objective, hyperparameters.num_class or 0)
    else:
        _check_regression_labels(profile, objective)


def _check_binary_labels(profile: CsvProfile, objective: str) -> None:
    distinct = profile.distinct_labels
    if distinct is None or not distinct <= {0.0, 1.0}:
        found = (
            _sample(distinct - {0.0, 1.0})
            if distinct is not None
            else f"more than {MAX_DISTINCT_LABELS} distinct values"
        )
        raise DropRejected(
            f"{profile.name}: objective {objective} needs labels 0 or 1, but found {found}; "
            "encode the positive class as 1 and the other as 0."
        )


def _check_class_labels(profile: CsvProfile, objective: str, num_class: int) -> None:
    if not profile.labels_integral:
        found = (
            f" such as {_sample(x for x in profile.distinct_labels if not x.is_integer())}"
            if profile.distinct_labels is not None
            else ""
        )
        raise DropRejected(
            f"{profile.name}: objective {objective} needs integer class labels 0 to "
            f"{num_class - 1}, but some labels are not integers{found}."
        )
    if profile.label_min < 0 or profile.label_max > num_class - 1:
        raise DropRejected(
            f"{profile.name}: labels run from {profile.label_min:g} to {profile.label_max:g}, but "
            f"num_class {num_class} allows 0 to {num_class - 1}; number the classes from 0 or "
            "raise num_class."
        )


# Label domains XGBoost enforces per objective, with its words:
# (lowest, whether the lowest itself is allowed, highest, message).
_REGRESSION_DOMAINS: Mapping[str, tuple[float, bool, float, str]] = MappingProxyType(
    {
        "reg:logistic": (0.0, True, 1.0, "label must be in [0,1] for logistic regression"),
        "count:poisson": (0.0, True, math.inf, "PoissonRegression: label must be nonnegative"),
        "reg:tweedie": (0.0, True, math.inf, "TweedieRegression: label must be nonnegative"),
        "reg:gamma": (0.0, False, math.inf, "label must be positive for gamma regression"),
        "reg:squaredlogerror": (
            -1.0,
            False,
            math.inf,
            "label must be greater than -1 for rmsle so that log(label + 1) can be valid",
        ),
    }
)


def _check_regression_labels(profile: CsvProfile, objective: str) -> None:
    domain = _REGRESSION_DOMAINS.get(objective)
    if domain is None:
        return
    low, low_allowed, high, message = domain
    too_low = profile.label_min < low or (profile.label_min == low and not low_allowed)
    if too_low or profile.label_max > high:
        raise DropRejected(
            f"{profile.name}: {message} ({objective}), but labels run from "
            f"{profile.label_min:g} to {profile.label_max:g}; fix the labels or pick another "
            "objective."
        )


def _require_both_classes(profile: CsvProfile, why: str) -> None:
    # Data read only in part may hold the other class further on (a file sorted by label).
    if (
        profile.complete
        and profile.distinct_labels is not None
        and len(profile.distinct_labels) < 2
    ):
        (only,) = profile.distinct_labels
        raise DropRejected(
            f"{profile.name} holds only label {only:g} rows, but {why}; include rows of label 0 "
            "and of label 1."
        )
