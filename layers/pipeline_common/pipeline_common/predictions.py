"""Prediction requests: parse and check them against the live model, then score on its endpoint."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

MAX_BODY_BYTES = 5_000_000
MAX_PAYLOAD_BYTES = 6_291_456  # InvokeEndpoint's limit on the CSV the endpoint receives
MAX_ROWS = 10_000
_JSON_EXAMPLE = '{"instances": [[0.455, 0.365, 0.095], [0.35, 0.265, 0.09]]}'

Row = list[float | None]
Prediction = float | list[float]


class PredictionRequestError(ValueError):
    """The request cannot be scored as sent; the message says what to change."""


class UnsupportedMediaType(PredictionRequestError):
    pass


@dataclass(frozen=True)
class PredictionRequest:
    rows: list[Row]

    def as_csv(self) -> str:
        return "\n".join(",".join("" if v is None else repr(v) for v in row) for row in self.rows)


def parse_request(
    body: str | None, content_type: str | None, num_features: int
) -> PredictionRequest:
    if not body:
        raise PredictionRequestError(f"the body is empty; send JSON like {_JSON_EXAMPLE}")
    if len(body.encode()) > MAX_BODY_BYTES:
        raise PredictionRequestError(
            f"the body is larger than {MAX_BODY_BYTES} bytes; split the rows into smaller requests"
        )
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type == "application/json":
        rows = _json_rows(body)
    elif media_type == "text/csv":
        rows = _csv_rows(body)
    else:
        raise UnsupportedMediaType(
            f"Content-Type {media_type} is not supported; use application/json or text/csv"
        )
    if not rows:
        raise PredictionRequestError("there are no rows to score")
    if len(rows) > MAX_ROWS:
        raise PredictionRequestError(
            f"{len(rows)} rows is more than {MAX_ROWS}; split them into smaller requests"
        )
    for number, row in enumerate(rows, start=1):
        if len(row) != num_features:
            raise PredictionRequestError(
                f"row {number} has {len(row)} values but the model expects {num_features} "
                "features (the label column excluded)"
            )
    request = PredictionRequest(rows)
    if len(request.as_csv().encode()) > MAX_PAYLOAD_BYTES:
        raise PredictionRequestError(
            f"the rows make more than {MAX_PAYLOAD_BYTES} bytes of CSV for the endpoint; "
            "split them into smaller requests"
        )
    return request


def _json_rows(body: str) -> list[Row]:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise PredictionRequestError(
            f"the body is not valid JSON ({error}); send {_JSON_EXAMPLE}"
        ) from error
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list):
        raise PredictionRequestError(f'the body needs an "instances" list, like {_JSON_EXAMPLE}')
    rows: list[Row] = []
    for number, instance in enumerate(instances, start=1):
        if not isinstance(instance, list):
            raise PredictionRequestError(f"instance {number} is not a list of feature values")
        rows.append([_number(value, number, column) for column, value in enumerate(instance, 1)])
    return rows


def _csv_rows(body: str) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        rows.append(
            [
                _number(field.strip() or None, number, c)
                for c, field in enumerate(line.split(","), 1)
            ]
        )
    return rows


def _number(value: object, row: int, column: int) -> float | None:
    if value is None:
        return None  # a missing value, as the built-in XGBoost reads an empty CSV field
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PredictionRequestError(f"row {row}, column {column}: {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise PredictionRequestError(
            f"row {row}, column {column}: {value!r} is not a number"
        ) from None
    if not math.isfinite(number):
        raise PredictionRequestError(f"row {row}, column {column}: {value!r} is not finite")
    return number


def parse_predictions(body: bytes) -> list[Prediction]:
    """The container's text/csv answer: one line per row, several values for class probabilities."""
    predictions: list[Prediction] = []
    for line in body.decode().splitlines():
        if not line.strip():
            continue
        values = [float(field) for field in line.strip("[] ").split(",")]
        predictions.append(values[0] if len(values) == 1 else values)
    return predictions
