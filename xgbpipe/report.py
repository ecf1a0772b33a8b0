"""A run's report: one PNG of diagnostic panels and a self-contained HTML page around it.

The test metrics are recomputed from the batch transform's joined output (each line the test row,
label first, then the prediction) and shown beside the ones the stack recorded. The training curve
re-scores train, validation and test with the model, round by round. Client-side only: the Lambda
layer carries neither numpy, scikit-learn, xgboost nor matplotlib.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    roc_curve,
    root_mean_squared_error,
)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Panel = Callable[[Axes], None]

MAX_CURVE_ROWS = 20_000
MAX_CURVE_POINTS = 200
MAX_SCATTER_POINTS = 20_000
TOP_FEATURES = 15
MAX_ANNOTATED_CLASSES = 12
MAX_LEGEND_CLASSES = 10
COLUMNS = 3
DPI = 100
# As pipeline_common.metrics: no renormalisation, since the probabilities the container writes
# need not sum to exactly 1, and clipping with float64's epsilon as scikit-learn's log_loss.
LOG_LOSS_EPS = sys.float_info.epsilon
_WRAPPERS = b'[]"'
_UNNAMED_FEATURE = re.compile(r"f(\d+)")
_RANDOM_SEED = 0


class ReportError(ValueError):
    """Inputs that cannot be reported on; the message says what to fix (one line)."""


@dataclass(frozen=True)
class ReportInputs:
    """One run's files and settings: `metrics` are the ones the stack recorded for the test set;
    train and validation (label first, no header) add their lines to the training curve."""

    title: str
    joined_output: Path
    model_file: Path
    objective: str
    num_features: int
    metrics: Mapping[str, float]
    train: Path | None = None
    validation: Path | None = None
    feature_names: Sequence[str] | None = None
    num_class: int | None = None


@dataclass(frozen=True)
class ReportFiles:
    """report.png, and report.html with the same PNG inside."""

    png: Path
    html: Path


class _Kind(StrEnum):
    REGRESSION = "regression"
    BINARY = "binary"
    MULTICLASS = "multiclass"


def _kind(objective: str) -> _Kind:
    if objective.startswith("binary:"):
        return _Kind.BINARY
    if objective.startswith("multi:"):
        return _Kind.MULTICLASS
    return _Kind.REGRESSION


@dataclass(frozen=True)
class _Labelled:
    """Rows with their labels; `source` and `line_numbers` name the file's lines in messages."""

    name: str
    source: str
    labels: Floats
    features: Floats
    line_numbers: Ints


@dataclass(frozen=True)
class _TestOutput:
    rows: _Labelled
    predictions: Floats  # (rows, prediction values per line)


@dataclass(frozen=True)
class _Evaluation:
    metrics: dict[str, float]
    panels: list[Panel]


@dataclass(frozen=True)
class _Curve:
    name: str
    rounds: Ints
    values: Floats


def write_report(inputs: ReportInputs, out_dir: Path) -> ReportFiles:
    """Write report.png and report.html into `out_dir` and return their paths."""
    kind = _kind(inputs.objective)
    if inputs.num_features < 1:
        raise ReportError(f"num_features is {inputs.num_features}; it must be 1 or more.")
    if inputs.feature_names is not None and len(inputs.feature_names) != inputs.num_features:
        raise ReportError(
            f"feature_names has {len(inputs.feature_names)} names but num_features is "
            f"{inputs.num_features}; pass one name per feature column, in order."
        )
    booster = _load_booster(inputs.model_file, inputs.num_features)
    classes = _classes(booster, inputs, kind)
    width = classes if inputs.objective == "multi:softprob" else 1
    test = _read_joined_output(inputs.joined_output, inputs.num_features, width)

    if kind is _Kind.REGRESSION:
        evaluation = _regression(test)
    elif kind is _Kind.BINARY:
        evaluation = _binary(test, inputs.objective)
    else:
        evaluation = _multiclass(test, classes)
    datasets = [
        _read_labelled_csv(path, inputs.num_features)
        for path in (inputs.train, inputs.validation)
        if path is not None
    ]
    metric, curves = _training_curves(
        booster, inputs.objective, kind, classes, [*datasets, test.rows]
    )
    importance = _importance(booster, inputs.feature_names)

    panels: list[Panel] = [
        *evaluation.panels,
        partial(_draw_metric_table, evaluation.metrics, inputs.metrics),
        partial(_draw_training_curve, metric, curves),
        partial(_draw_importance, importance),
    ]
    png = _render(f"{inputs.title} ({inputs.objective})", panels)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(png=out_dir / "report.png", html=out_dir / "report.html")
    files.png.write_bytes(png)
    files.html.write_text(_html(inputs, evaluation.metrics, png), encoding="utf-8")
    return files


# Inputs


def _load_booster(model_file: Path, num_features: int) -> xgboost.Booster:
    if not model_file.is_file():
        raise ReportError(
            f"The model file {model_file} does not exist; extract xgboost-model from model.tar.gz."
        )
    try:
        booster = xgboost.Booster(model_file=str(model_file))
    except xgboost.core.XGBoostError as error:
        reason = str(error).splitlines()[0]
        raise ReportError(
            f"xgboost {xgboost.__version__} cannot load {model_file} ({reason}); pass the "
            "xgboost-model file extracted from the run's model.tar.gz."
        ) from None
    if booster.num_features() != num_features:
        raise ReportError(
            f"The model takes {booster.num_features()} features but num_features is "
            f"{num_features}; check the schema or the model file."
        )
    return booster


def _classes(booster: xgboost.Booster, inputs: ReportInputs, kind: _Kind) -> int:
    """The classes the model tells apart (0 for regression); it must agree with the inputs."""
    learner = json.loads(booster.save_config())["learner"]
    trained_with = str(learner["objective"]["name"])
    if _kind(trained_with) is not kind:
        raise ReportError(
            f"The model was trained with {trained_with} but the objective given is "
            f"{inputs.objective}; pass the run's objective."
        )
    if kind is not _Kind.MULTICLASS:
        return 2 if kind is _Kind.BINARY else 0
    model_classes = int(learner["learner_model_param"]["num_class"])
    if inputs.num_class is not None and inputs.num_class != model_classes:
        raise ReportError(
            f"num_class is {inputs.num_class} but the model has {model_classes} classes; "
            "pass the run's num_class."
        )
    return model_classes


def _read_joined_output(path: Path, num_features: int, width: int) -> _TestOutput:
    """Parse the joined output; `width` is the prediction values per line."""
    if not path.is_file():
        raise ReportError(
            f"The joined output {path} does not exist; pass the batch transform's test.csv.out."
        )
    input_width = num_features + 1
    line_width = input_width + width
    values, numbers = array("d"), array("q")
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            # Brackets and quotes only wrap a multi:softprob prediction; the commas inside split it.
            fields = raw.translate(None, _WRAPPERS).split(b",")
            if len(fields) == 1 and not fields[0].strip():
                continue
            if len(fields) != line_width:
                raise ReportError(
                    f"Line {number} of {path.name} has {len(fields)} values; expected "
                    f"{line_width}: the label, {num_features} features and {width} "
                    "prediction value(s). Check num_features, the objective and num_class."
                )
            try:
                parsed = list(map(float, fields))
            except ValueError:
                parsed = _floats_with_missing(fields, input_width, number, path)
            values.extend(parsed)
            numbers.append(number)
    if not numbers:
        raise ReportError(
            f"The joined output {path} has no rows; check that the batch transform succeeded."
        )
    table = np.frombuffer(values, dtype=np.float64).reshape(-1, line_width)
    line_numbers = np.frombuffer(numbers, dtype=np.int64)
    scored = np.delete(table, np.s_[1:input_width], axis=1)  # the label and the prediction
    not_finite = ~np.isfinite(scored).all(axis=1)
    if not_finite.any():
        raise ReportError(
            f"Line {line_numbers[np.argmax(not_finite)]} of {path.name}: the label and the "
            "prediction must be finite numbers; fix or drop the line."
        )
    rows = _Labelled(
        name="test",
        source=path.name,
        labels=table[:, 0],
        features=table[:, 1:input_width],
        line_numbers=line_numbers,
    )
    return _TestOutput(rows, table[:, input_width:])


def _floats_with_missing(
    fields: list[bytes], input_width: int, number: int, path: Path
) -> list[float]:
    """The line's values with empty features as missing (NaN); any other text is an error."""
    parsed = []
    for index, text in enumerate(fields, start=1):
        if 1 < index <= input_width and not text.strip():
            parsed.append(math.nan)
            continue
        try:
            parsed.append(float(text))
        except ValueError:
            shown = text.strip()[:40].decode("utf-8", "backslashreplace")
            raise ReportError(
                f"Line {number} of {path.name}, field {index}: {shown!r} is not a number; "
                "the joined output must be numeric CSV."
            ) from None
    return parsed


def _read_labelled_csv(path: Path, num_features: int) -> _Labelled:
    """train.csv or validation.csv: label first, no header."""
    if not path.is_file():
        raise ReportError(f"{path} does not exist; pass the run's train.csv or validation.csv.")
    try:
        frame = pd.read_csv(path, header=None, dtype=np.float64)
    except ValueError as error:  # pandas' EmptyDataError and ParserError are ValueErrors
        reason = str(error).splitlines()[0]
        raise ReportError(
            f"{path} cannot be read ({reason}); it must be numeric CSV, label first, no header."
        ) from None
    if frame.shape[1] != num_features + 1:
        raise ReportError(
            f"{path} has {frame.shape[1]} columns; expected {num_features + 1} "
            f"(the label and {num_features} features). Check num_features."
        )
    values = frame.to_numpy(dtype=np.float64)
    return _Labelled(
        name=path.stem,
        source=path.name,
        labels=values[:, 0],
        features=values[:, 1:],
        line_numbers=np.arange(1, len(values) + 1, dtype=np.int64),
    )


def _class_labels(rows: _Labelled, classes: int) -> Ints:
    return _classes_of(rows.labels, classes, rows, "label")


def _classes_of(values: Floats, classes: int, rows: _Labelled, what: str) -> Ints:
    bad = (values != np.round(values)) | (values < 0) | (values >= classes)
    if bad.any():
        first = int(np.argmax(bad))
        raise ReportError(
            f"Line {rows.line_numbers[first]} of {rows.source}: the {what} {values[first]:g} is "
            f"not a class (0 to {classes - 1}); check the objective and num_class."
        )
    return values.astype(np.int64)


# Test metrics and panels


def _regression(test: _TestOutput) -> _Evaluation:
    actual = test.rows.labels
    predicted = test.predictions[:, 0]
    metrics = {
        "rows": float(len(actual)),
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
    }
    if len(actual) >= 2:  # R^2 is undefined for one row
        metrics["r2"] = float(r2_score(actual, predicted))
    return _Evaluation(
        metrics,
        [
            partial(_draw_predicted_vs_actual, actual, predicted),
            partial(_draw_residuals, actual - predicted),
        ],
    )


def _binary(test: _TestOutput, objective: str) -> _Evaluation:
    actual = _class_labels(test.rows, 2)
    scores = test.predictions[:, 0]
    probabilities: Floats | None
    if objective == "binary:hinge":
        probabilities = None
        predicted = (scores > 0.5).astype(np.int64)
    else:
        if objective == "binary:logitraw":
            probabilities = _sigmoid(scores)
        else:
            _check_probabilities(scores, test.rows)
            probabilities = scores
        predicted = (probabilities > 0.5).astype(np.int64)
    both_classes = bool(0 < actual.sum() < len(actual))
    metrics = {"rows": float(len(actual))}
    if both_classes:
        metrics["auc"] = float(roc_auc_score(actual, scores))
    metrics["accuracy"] = float(accuracy_score(actual, predicted))
    panels: list[Panel] = [
        partial(_draw_binary_roc, actual, scores, both_classes),
        partial(_draw_confusion, actual, predicted, 2, "Confusion matrix (threshold 0.5)"),
    ]
    if probabilities is not None:
        metrics["logloss"] = _log_loss(np.where(actual == 1, probabilities, 1 - probabilities))
        panels.append(partial(_draw_calibration, actual, probabilities))
    return _Evaluation(metrics, panels)


def _multiclass(test: _TestOutput, classes: int) -> _Evaluation:
    probabilities: Floats | None
    if test.predictions.shape[1] > 1:
        probabilities = test.predictions
        predicted = np.argmax(probabilities, axis=1).astype(np.int64)
    else:
        probabilities = None
        predicted = _classes_of(test.predictions[:, 0], classes, test.rows, "predicted class")
    actual = _class_labels(test.rows, classes)
    metrics = {"rows": float(len(actual)), "accuracy": float(accuracy_score(actual, predicted))}
    panels: list[Panel] = [partial(_draw_confusion, actual, predicted, classes, "Confusion matrix")]
    if probabilities is not None:
        metrics["logloss"] = _log_loss(probabilities[np.arange(len(actual)), actual])
        panels.append(partial(_draw_multiclass_roc, actual, probabilities))
    return _Evaluation(metrics, panels)


def _check_probabilities(scores: Floats, rows: _Labelled) -> None:
    outside = (scores < 0) | (scores > 1)
    if outside.any():
        first = int(np.argmax(outside))
        raise ReportError(
            f"Line {rows.line_numbers[first]} of {rows.source}: the prediction "
            f"{scores[first]:g} is not a probability; is the objective binary:logitraw?"
        )


def _sigmoid(margins: Floats) -> Floats:
    result: Floats = 0.5 * (1.0 + np.tanh(0.5 * margins))  # no overflow for large margins
    return result


def _log_loss(true_class_probabilities: Floats) -> float:
    clipped = np.clip(true_class_probabilities, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(np.log(clipped)))


# Training curve and feature importance


def _training_curves(
    booster: xgboost.Booster,
    objective: str,
    kind: _Kind,
    classes: int,
    datasets: list[_Labelled],
) -> tuple[str, list[_Curve]]:
    """The objective's metric after each of up to MAX_CURVE_POINTS rounds, per data set."""
    total = booster.num_boosted_rounds()
    rounds = np.unique(np.linspace(1, total, min(total, MAX_CURVE_POINTS)).round().astype(np.int64))
    rng = np.random.default_rng(_RANDOM_SEED)
    if kind is _Kind.REGRESSION:
        metric: str = "rmse"
    elif kind is _Kind.MULTICLASS:
        metric = "mlogloss"
    else:
        metric = "error" if objective == "binary:hinge" else "logloss"
    curves = []
    for rows in datasets:
        keep = np.arange(len(rows.labels))
        if len(keep) > MAX_CURVE_ROWS:
            keep = np.sort(rng.choice(len(keep), MAX_CURVE_ROWS, replace=False))
        labels = rows.labels[keep]
        if kind is not _Kind.REGRESSION:
            labels = _class_labels(rows, classes)[keep].astype(np.float64)
        matrix = xgboost.DMatrix(
            rows.features[keep],
            feature_names=booster.feature_names,
            feature_types=booster.feature_types,
        )
        score = partial(_round_metric, booster, matrix, labels, metric)
        values = np.array([score(int(i)) for i in rounds], dtype=np.float64)
        curves.append(_Curve(rows.name, rounds, values))
    return metric, curves


def _round_metric(
    booster: xgboost.Booster, matrix: xgboost.DMatrix, labels: Floats, metric: str, rounds: int
) -> float:
    if metric in {"rmse", "error"}:
        predicted = booster.predict(matrix, iteration_range=(0, rounds))
        if metric == "rmse":
            return float(np.sqrt(np.mean((labels - predicted) ** 2)))
        return float(np.mean((predicted > 0.5) != labels))
    margins = booster.predict(matrix, output_margin=True, iteration_range=(0, rounds))
    if metric == "logloss":
        # -log(sigmoid(m)) for positives and -log(sigmoid(-m)) for negatives, without overflow.
        return float(np.mean(np.logaddexp(0.0, np.where(labels == 1, -margins, margins))))
    shifted = margins - margins.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probabilities[np.arange(len(labels)), labels.astype(np.int64)]))


def _importance(
    booster: xgboost.Booster, feature_names: Sequence[str] | None
) -> list[tuple[str, float]]:
    """The TOP_FEATURES features by average gain per split (xgboost's "gain"), named from the
    schema when it is given."""
    gains = {
        name: float(np.mean(gain))
        for name, gain in booster.get_score(importance_type="gain").items()
    }
    top = sorted(gains.items(), key=lambda item: item[1], reverse=True)[:TOP_FEATURES]
    return [(_feature_label(name, feature_names), gain) for name, gain in top]


def _feature_label(name: str, feature_names: Sequence[str] | None) -> str:
    unnamed = _UNNAMED_FEATURE.fullmatch(name)
    if feature_names is None or unnamed is None:
        return name
    return feature_names[int(unnamed.group(1))]


# Drawing


def _render(title: str, panels: list[Panel]) -> bytes:
    rows = math.ceil(len(panels) / COLUMNS)
    figure = Figure(figsize=(6 * COLUMNS, 5 * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=14)
    for index, draw in enumerate(panels, start=1):
        draw(figure.add_subplot(rows, COLUMNS, index))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _note(axes: Axes, title: str, text: str) -> None:
    axes.set_title(title)
    axes.axis("off")
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=axes.transAxes)


def _draw_predicted_vs_actual(actual: Floats, predicted: Floats, axes: Axes) -> None:
    shown = np.arange(len(actual))
    if len(shown) > MAX_SCATTER_POINTS:
        rng = np.random.default_rng(_RANDOM_SEED)
        shown = rng.choice(len(shown), MAX_SCATTER_POINTS, replace=False)
    axes.scatter(actual[shown], predicted[shown], s=8, alpha=0.5, edgecolors="none")
    low = float(min(actual.min(), predicted.min()))
    high = float(max(actual.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="black", linestyle="--", linewidth=1, label="y = x")
    axes.set(title="Predicted vs actual", xlabel="actual", ylabel="predicted")
    axes.legend(loc="upper left")


def _draw_residuals(residuals: Floats, axes: Axes) -> None:
    bins = int(np.clip(np.sqrt(len(residuals)), 10, 60))
    axes.hist(residuals, bins=bins, color="tab:blue", alpha=0.8)
    axes.axvline(0.0, color="black", linestyle="--", linewidth=1)
    axes.set(title="Residuals (actual - predicted)", xlabel="residual", ylabel="rows")


def _draw_binary_roc(actual: Ints, scores: Floats, both_classes: bool, axes: Axes) -> None:
    if not both_classes:
        _note(axes, "ROC curve", "The test set has one class only;\nROC needs both.")
        return
    false_positives, true_positives, _ = roc_curve(actual, scores)
    area = roc_auc_score(actual, scores)
    axes.plot(false_positives, true_positives, label=f"AUC {area:.4f}")
    _finish_roc(axes, "ROC curve")


def _draw_multiclass_roc(actual: Ints, probabilities: Floats, axes: Axes) -> None:
    classes = probabilities.shape[1]
    for label in range(classes):
        positive = actual == label
        if 0 < positive.sum() < len(actual):
            false_positives, true_positives, _ = roc_curve(positive, probabilities[:, label])
            area = roc_auc_score(positive, probabilities[:, label])
            axes.plot(false_positives, true_positives, label=f"class {label} (AUC {area:.3f})")
    _finish_roc(axes, "ROC, one class vs the rest", legend=classes <= MAX_LEGEND_CLASSES)


def _finish_roc(axes: Axes, title: str, legend: bool = True) -> None:
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axes.set(title=title, xlabel="false positive rate", ylabel="true positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    if legend:
        axes.legend(loc="lower right", fontsize="small")


def _draw_confusion(actual: Ints, predicted: Ints, classes: int, title: str, axes: Axes) -> None:
    counts = confusion_matrix(actual, predicted, labels=list(range(classes)))
    image = axes.imshow(counts, cmap="Blues")
    axes.figure.colorbar(image, ax=axes, shrink=0.8)
    if classes <= MAX_ANNOTATED_CLASSES:
        threshold = counts.max() / 2
        for (row, column), count in np.ndenumerate(counts):
            color = "white" if count > threshold else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=color)
        axes.set_xticks(range(classes))
        axes.set_yticks(range(classes))
    axes.set(title=title, xlabel="predicted class", ylabel="actual class")


def _draw_calibration(actual: Ints, probabilities: Floats, axes: Axes) -> None:
    observed, mean_predicted = calibration_curve(actual, probabilities, n_bins=10)
    axes.plot(mean_predicted, observed, marker="o", label="model")
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    axes.set(
        title="Calibration (10 bins)",
        xlabel="mean predicted probability",
        ylabel="fraction of positives",
    )
    axes.legend(loc="upper left")


def _draw_metric_table(
    recomputed: Mapping[str, float], recorded: Mapping[str, float], axes: Axes
) -> None:
    axes.axis("off")
    axes.set_title("Test metrics")
    cells = [
        [name, _short(recomputed.get(name)), _short(recorded.get(name))]
        for name in _metric_names(recomputed, recorded)
    ]
    table = axes.table(
        cellText=cells,
        colLabels=["metric", "recomputed", "recorded"],
        cellLoc="center",
        loc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(11)
    table.scale(1, 1.6)


def _draw_training_curve(metric: str, curves: list[_Curve], axes: Axes) -> None:
    for curve in curves:
        axes.plot(curve.rounds, curve.values, label=curve.name)
    axes.set(title=f"Training curve ({metric})", xlabel="boosting rounds", ylabel=metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend()


def _draw_importance(importance: list[tuple[str, float]], axes: Axes) -> None:
    if not importance:
        _note(axes, "Feature importance (gain)", "The model has no splits.")
        return
    names = [name for name, _ in reversed(importance)]
    gains = [gain for _, gain in reversed(importance)]
    axes.barh(names, gains, color="tab:green")
    axes.set(title=f"Feature importance (gain, top {TOP_FEATURES})", xlabel="average gain")


# HTML


def _metric_names(recomputed: Mapping[str, float], recorded: Mapping[str, float]) -> list[str]:
    return [*recomputed, *(name for name in recorded if name not in recomputed)]


def _short(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.4g}"


def _precise(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.10g}"


def _html(inputs: ReportInputs, recomputed: Mapping[str, float], png: bytes) -> str:
    rows = []
    for name in _metric_names(recomputed, inputs.metrics):
        ours, theirs = recomputed.get(name), inputs.metrics.get(name)
        difference = "—" if ours is None or theirs is None else f"{ours - float(theirs):+.3g}"
        rows.append(
            f'<tr data-metric="{html.escape(name)}"><th>{html.escape(name)}</th>'
            f'<td class="recomputed">{_precise(ours)}</td>'
            f'<td class="recorded">{_precise(theirs)}</td>'
            f'<td class="difference">{difference}</td></tr>'
        )
    title = html.escape(inputs.title)
    body = "\n".join(rows)
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.8rem; text-align: right; }}
th {{ text-align: left; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>Objective: <code>{html.escape(inputs.objective)}</code>;
{inputs.num_features} features; joined output <code>{html.escape(inputs.joined_output.name)}</code>.
</p>
<h2>Test metrics</h2>
<table class="metrics">
<thead><tr><th>metric</th><th>recomputed from the joined output</th>
<th>recorded by the stack</th><th>difference</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
<img src="data:image/png;base64,{image}" alt="Report panels for {title}">
</body>
</html>
"""
