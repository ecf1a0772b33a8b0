"""The run report: one PNG of panels, the same PNG inside the HTML, the metrics recomputed."""

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xgboost
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from xgbpipe.report import ReportError, ReportFiles, ReportInputs, write_report

FEATURES = 4
ROUNDS = 20
TRAIN_ROWS, VALIDATION_ROWS, TEST_ROWS = 200, 100, 300
TOLERANCE = 1e-6
NAMES = ["length", "diameter", "height", "weight"]


@dataclass(frozen=True)
class Data:
    features: np.ndarray
    labels: np.ndarray

    def part(self, start: int, stop: int) -> "Data":
        return Data(self.features[start:stop], self.labels[start:stop])


@dataclass(frozen=True)
class Run:
    """A trained model with its files, as a run leaves them."""

    directory: Path
    model: Path
    train: Path
    validation: Path
    test: Data
    booster: xgboost.Booster


def make_data(objective: str) -> Data:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(TRAIN_ROWS + VALIDATION_ROWS + TEST_ROWS, FEATURES))
    signal = features @ np.array([1.5, -1.0, 0.5, 0.0])
    noisy = signal + rng.normal(scale=0.5, size=len(signal))
    if objective.startswith("binary:"):
        labels = (noisy > 0).astype(float)
    elif objective.startswith("multi:"):
        labels = np.digitize(noisy, [-1.0, 1.0]).astype(float)
    else:
        labels = 10 + noisy
    return Data(features, labels)


def write_csv(path: Path, data: Data) -> Path:
    rows = np.column_stack([data.labels, data.features])
    path.write_text("".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows))
    return path


def train_run(directory: Path, objective: str) -> Run:
    data = make_data(objective)
    train = data.part(0, TRAIN_ROWS)
    params: dict[str, str | int] = {"objective": objective, "max_depth": 3, "nthread": 1}
    if objective.startswith("multi:"):
        params["num_class"] = 3
    booster = xgboost.train(params, xgboost.DMatrix(train.features, label=train.labels), ROUNDS)
    model = directory / "xgboost-model"
    model.write_bytes(booster.save_raw(raw_format="ubj"))
    return Run(
        directory=directory,
        model=model,
        train=write_csv(directory / "train.csv", train),
        validation=write_csv(
            directory / "validation.csv", data.part(TRAIN_ROWS, TRAIN_ROWS + VALIDATION_ROWS)
        ),
        test=data.part(TRAIN_ROWS + VALIDATION_ROWS, len(data.labels)),
        booster=booster,
    )


def write_joined(path: Path, data: Data, predictions: np.ndarray, form: str = "fields") -> Path:
    """The transform's JoinSource Input output: the test row, then the prediction."""
    lines = []
    for label, row, prediction in zip(data.labels, data.features, predictions, strict=True):
        values = [repr(float(v)) for v in np.atleast_1d(prediction)]
        written = {
            "fields": ",".join(values),
            "bracketed": "[" + ", ".join(values) + "]",
            "quoted": '"[' + ", ".join(values) + ']"',
        }[form]
        lines.append(",".join([repr(float(label)), *(repr(float(v)) for v in row), written]))
    path.write_text("\n".join(lines) + "\n")
    return path


def predict(run: Run) -> np.ndarray:
    predictions: np.ndarray = run.booster.predict(xgboost.DMatrix(run.test.features))
    return predictions.astype(np.float64)


def report(
    run: Run,
    objective: str,
    joined: Path,
    metrics: dict[str, float] | None = None,
    *,
    with_training_files: bool = True,
    feature_names: Sequence[str] | None = None,
    num_class: int | None = None,
    model: Path | None = None,
) -> ReportFiles:
    inputs = ReportInputs(
        title="unit, run 3f2a9c1b7d0e",
        joined_output=joined,
        model_file=model or run.model,
        objective=objective,
        num_features=FEATURES,
        metrics=metrics or {},
        train=run.train if with_training_files else None,
        validation=run.validation if with_training_files else None,
        feature_names=feature_names,
        num_class=num_class,
    )
    return write_report(inputs, run.directory / "report")


def checked_html(files: ReportFiles) -> str:
    """The report's HTML, after checking the PNG is a real picture embedded byte for byte."""
    assert files.png.name == "report.png"
    assert files.html.name == "report.html"
    with Image.open(files.png) as image:
        assert image.format == "PNG"
        assert image.width > 400
        assert image.height > 400
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=rgb.width * rgb.height)
        pixels = np.asarray(rgb)
    assert colours is not None
    assert len(colours) > 50
    assert (pixels < 240).any(axis=2).mean() > 0.02  # panels drawn, not a white page
    html = files.html.read_text(encoding="utf-8")
    embedded = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert embedded is not None
    assert base64.b64decode(embedded.group(1), validate=True) == files.png.read_bytes()
    return html


def shown(html: str, metric: str, column: str = "recomputed") -> float:
    row = re.search(rf'<tr data-metric="{metric}">(.*?)</tr>', html)
    assert row is not None, f"no {metric} row in the metric table"
    cell = re.search(rf'<td class="{column}">([^<]*)</td>', row.group(1))
    assert cell is not None
    return float(cell.group(1))


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return train_run(tmp_path_factory.mktemp("regression"), "reg:squarederror")


def test_regression_report(regression_run: Run) -> None:
    # Given a regression run's joined output and the metrics the stack recorded
    run = regression_run
    predictions = predict(run)
    joined = write_joined(run.directory / "test.csv.out", run.test, predictions)
    expected_rmse = root_mean_squared_error(run.test.labels, predictions)
    recorded = {"rows": float(TEST_ROWS), "rmse": expected_rmse, "gate_threshold": 3.0}

    # When the report is written with the training files and the schema's names
    files = report(run, "reg:squarederror", joined, recorded, feature_names=NAMES)

    # Then the recomputed metrics are scikit-learn's, beside the recorded ones
    html = checked_html(files)
    assert shown(html, "rmse") == pytest.approx(expected_rmse, abs=TOLERANCE)
    assert shown(html, "rmse", "recorded") == pytest.approx(expected_rmse, abs=TOLERANCE)
    assert shown(html, "mae") == pytest.approx(
        mean_absolute_error(run.test.labels, predictions), abs=TOLERANCE
    )
    assert shown(html, "r2") == pytest.approx(r2_score(run.test.labels, predictions), abs=TOLERANCE)
    assert shown(html, "rows") == TEST_ROWS
    assert shown(html, "gate_threshold", "recorded") == 3.0
    assert "unit, run 3f2a9c1b7d0e" in html
    assert "reg:squarederror" in html


def test_binary_logistic_report(tmp_path: Path) -> None:
    # Given a binary:logistic run whose joined output ends in a probability
    run = train_run(tmp_path, "binary:logistic")
    probabilities = predict(run)
    joined = write_joined(tmp_path / "test.csv.out", run.test, probabilities)

    # When the report is written without training files (the curve shows the test set)
    files = report(run, "binary:logistic", joined, with_training_files=False)

    # Then AUC, accuracy at 0.5 and log loss are scikit-learn's
    html = checked_html(files)
    labels = run.test.labels
    assert shown(html, "auc") == pytest.approx(roc_auc_score(labels, probabilities), abs=TOLERANCE)
    assert shown(html, "accuracy") == pytest.approx(
        accuracy_score(labels, probabilities > 0.5), abs=TOLERANCE
    )
    assert shown(html, "logloss") == pytest.approx(log_loss(labels, probabilities), abs=TOLERANCE)


def test_multiclass_softprob_report_reads_bracketed_probabilities(tmp_path: Path) -> None:
    # Given a multi:softprob run whose joined output ends in "[p0, p1, p2]"
    run = train_run(tmp_path, "multi:softprob")
    probabilities = predict(run)
    joined = write_joined(tmp_path / "test.csv.out", run.test, probabilities, form="bracketed")

    # When the report is written
    files = report(run, "multi:softprob", joined, num_class=3)

    # Then accuracy and log loss are scikit-learn's
    html = checked_html(files)
    labels = run.test.labels
    normalised = probabilities / probabilities.sum(axis=1, keepdims=True)
    assert shown(html, "accuracy") == pytest.approx(
        accuracy_score(labels, probabilities.argmax(axis=1)), abs=TOLERANCE
    )
    assert shown(html, "logloss") == pytest.approx(log_loss(labels, normalised), abs=TOLERANCE)


@pytest.fixture
def joined(regression_run: Run, tmp_path: Path) -> Path:
    return write_joined(tmp_path / "test.csv.out", regression_run.test, predict(regression_run))


def report_error(
    run: Run,
    joined: Path,
    *,
    feature_names: Sequence[str] | None = None,
    model: Path | None = None,
) -> str:
    with pytest.raises(ReportError) as raised:
        report(
            run,
            "reg:squarederror",
            joined,
            with_training_files=False,
            feature_names=feature_names,
            model=model,
        )
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_ragged_line_is_named(regression_run: Run, joined: Path) -> None:
    lines = joined.read_text().splitlines()
    fields = lines[2].split(",")
    del fields[2]  # a feature
    lines[2] = ",".join(fields)
    joined.write_text("\n".join(lines) + "\n")
    message = report_error(regression_run, joined)
    assert "Line 3 of test.csv.out has 5 values; expected 6" in message


def test_a_non_numeric_value_is_named(regression_run: Run, joined: Path) -> None:
    lines = joined.read_text().splitlines()
    lines[4] = "1.0,M," + lines[4].split(",", 2)[2]
    joined.write_text("\n".join(lines) + "\n")
    assert "Line 5 of test.csv.out, field 2: 'M' is not a number" in report_error(
        regression_run, joined
    )


def test_an_empty_joined_output_is_refused(regression_run: Run, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv.out"
    empty.write_text("\n")
    assert "has no rows" in report_error(regression_run, empty)


def test_a_missing_joined_output_is_refused(regression_run: Run, tmp_path: Path) -> None:
    assert "does not exist" in report_error(regression_run, tmp_path / "absent.csv.out")


def test_feature_names_must_name_every_feature(regression_run: Run, joined: Path) -> None:
    message = report_error(regression_run, joined, feature_names=NAMES[:3])
    assert "feature_names has 3 names but num_features is 4" in message


def test_a_model_xgboost_cannot_load_is_refused(
    regression_run: Run, joined: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "xgboost-model"
    broken.write_bytes(b"this is not a model")
    assert "cannot load" in report_error(regression_run, joined, model=broken)


def test_the_objective_must_match_the_model(regression_run: Run, joined: Path) -> None:
    with pytest.raises(ReportError, match=r"trained with reg:squarederror .* binary:logistic"):
        report(regression_run, "binary:logistic", joined)
