"""The built-in XGBoost container's inference behaviour: parse, predict, encode, fail.

Mirrors `algorithm_mode/serve.py` of the 3.0-5 image: the same accepted content types, the same
status codes and messages, and byte-for-byte the same response bodies, so a client sees here what
it would see from a real endpoint or batch transform.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

import numpy as np
import xgboost as xgb

MODEL_FILE_NAME = "xgboost-model"
DEFAULT_ACCEPT = "text/csv"
SUPPORTED_ACCEPTS = ("application/json", "application/jsonlines", "text/csv")
CONTAINER_ACCEPTS = [
    "application/json",
    "application/jsonlines",
    "application/x-recordio-protobuf",
    "text/csv",
]
TRAINING_CONTENT_TYPES = (
    "csv",
    "libsvm",
    "parquet",
    "recordio-protobuf",
    "text/csv",
    "text/libsvm",
    "text/x-libsvm",
    "application/x-parquet",
    "application/x-recordio-protobuf",
)
_CSV_TYPES = ("csv", "text/csv")
_LIBSVM_TYPES = ("libsvm", "text/libsvm", "text/x-libsvm")
_PARQUET_TYPES = ("parquet", "application/x-parquet")
_RECORDIO_TYPES = ("recordio-protobuf", "application/x-recordio-protobuf")


class ContainerError(Exception):
    """A non-2xx answer from the container: its HTTP status and response text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ContentTypeError(ValueError):
    """A content type the algorithm does not read."""


def parse_header(value: str) -> tuple[str, dict[str, str]]:
    """Split `type/sub; key=value` into the lowercased type and its parameters."""
    message = Message()
    message["content-type"] = value
    params = dict(message.get_params() or [])
    params.pop(message.get_content_type(), None)
    main = value.split(";", 1)[0].strip().lower()
    return main, {key.lower(): val for key, val in params.items()}


def data_format(content_type: str | None) -> str:
    """The algorithm's data format for a ContentType: csv, libsvm, parquet or recordio-protobuf.

    A missing type means libsvm, as in the container.
    """
    if content_type is None:
        return "libsvm"
    main, params = parse_header(content_type.lower())
    if main in _CSV_TYPES:
        if params.get("label_size", "1") != "1":
            raise ContentTypeError(
                f"{content_type} is not an accepted csv ContentType. "
                "Optional parameter label_size must be equal to 1"
            )
        return "csv"
    for kind, names in (
        ("libsvm", _LIBSVM_TYPES),
        ("parquet", _PARQUET_TYPES),
        ("recordio-protobuf", _RECORDIO_TYPES),
    ):
        if main in names:
            return kind
    raise ContentTypeError(
        f"{content_type} is not an accepted ContentType: {', '.join(TRAINING_CONTENT_TYPES)}."
    )


def sniff_delimiter(line: str) -> str:
    """The container sniffs the delimiter; it falls back to a comma when the guess is a letter."""
    delimiter = csv.Sniffer().sniff(line).delimiter
    return "," if delimiter.isalnum() else delimiter


def csv_payload_to_matrix(text: str) -> np.ndarray:
    """Rows of features, empty fields as NaN, cast to float64 as the container does."""
    delimiter = sniff_delimiter(text.split("\n", maxsplit=1)[0][:512])
    rows = [
        ["nan" if field == "" else field for field in line.split(delimiter)]
        for line in text.split("\n")
    ]
    return np.array(rows).astype(float)


def libsvm_payload_to_dmatrix(text: str) -> xgb.DMatrix:
    """Sparse rows `label index:value ...`; 1-based indices shift to 0 as in the container."""
    from scipy.sparse import csr_matrix

    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for row_index, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                index, value = item.split(":")[:2]
                rows.append(row_index)
                cols.append(int(index))
                values.append(float(value))
    col_array = np.array(cols, dtype=int)
    if col_array.size and col_array.min() >= 1:
        col_array = col_array - 1
    return xgb.DMatrix(csr_matrix((np.array(values), (np.array(rows), col_array))))


def parse_payload(body: bytes, content_type: str | None) -> xgb.DMatrix:
    """Parse a request body as the container does; failures are its 415 answers."""
    try:
        kind = data_format(content_type)
    except ContentTypeError as error:
        raise ContainerError(415, str(error)) from error
    if kind == "csv":
        try:
            return xgb.DMatrix(csv_payload_to_matrix(body.strip().decode("utf-8")))
        except Exception as error:
            raise ContainerError(
                415,
                "Loading csv data failed with Exception, please ensure data is in csv format:"
                f"\n {type(error)}\n {error}",
            ) from error
    if kind == "libsvm":
        try:
            return libsvm_payload_to_dmatrix(body.strip().decode("utf-8"))
        except Exception as error:
            raise ContainerError(
                415,
                "Loading libsvm data failed with Exception, please ensure data is in libsvm "
                f"format:\n {type(error)}\n {error}",
            ) from error
    raise ContainerError(415, f"Content-type {content_type} is not supported.")


def resolve_accept(accept: str | None) -> str:
    """The container's Accept handling: missing or */* means text/csv; unknown types are 406."""
    main = parse_header(accept)[0] if accept else ""
    if not main or main == "*/*":
        return DEFAULT_ACCEPT
    if main not in CONTAINER_ACCEPTS:
        raise ContainerError(
            406,
            f"Accept type {main} is not supported. "
            f"Please use supported accept types: {CONTAINER_ACCEPTS}.",
        )
    if main not in SUPPORTED_ACCEPTS:
        raise ContainerError(406, f"Accept type {main} is not supported by the local SageMaker.")
    return main


def _csv_cell(value: Any) -> str:
    return ",".join(str(item) for item in value) if isinstance(value, list) else str(value)


def encode_predictions(predictions: Sequence[Any], accept: str, *, batch: bool = False) -> str:
    """Encode predictions exactly as the container writes them (Python `str()` of each float)."""
    if batch:
        return "\n".join(map(str, predictions)) + "\n"
    if accept == "application/json":
        return json.dumps({"predictions": [{"score": value} for value in predictions]})
    if accept == "application/jsonlines":
        return "".join(json.dumps(value) + "\n" for value in predictions)
    return "".join(_csv_cell(value) + "\n" for value in predictions)


def load_booster(model_bytes: bytes) -> xgb.Booster:
    """Load a model file (UBJSON, JSON or the legacy binary; xgboost sniffs the format)."""
    booster = xgb.Booster()
    booster.load_model(bytearray(model_bytes))
    return booster


def model_file_from_archive(archive: bytes) -> bytes:
    """The first regular, non-hidden file in model.tar.gz, as the container picks it."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and not name.startswith("."):
                extracted = tar.extractfile(member)
                if extracted is not None:
                    return extracted.read()
    raise ValueError("model.tar.gz holds no model file")


@dataclass
class Answer:
    body: bytes
    content_type: str


class ServingModel:
    """One loaded model, answering invocations like one container instance."""

    def __init__(self, booster: xgb.Booster) -> None:
        # The container pins prediction to one thread per worker.
        booster.set_param("nthread", "1")
        self._booster = booster
        self._lock = threading.Lock()

    @classmethod
    def from_archive(cls, archive: bytes) -> ServingModel:
        return cls(load_booster(model_file_from_archive(archive)))

    def predict(self, dmatrix: xgb.DMatrix) -> list[Any]:
        try:
            with self._lock:
                predictions = self._booster.predict(dmatrix, validate_features=False)
        except Exception as error:
            raise ContainerError(400, f"Unable to evaluate payload provided: {error}") from error
        result: list[Any] = predictions.tolist()
        return result

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, *, batch: bool = False
    ) -> Answer | None:
        """Answer one request; None stands for the container's 204 on an empty body."""
        if not body:
            return None
        predictions = self.predict(parse_payload(body, content_type))
        resolved = resolve_accept(accept)
        return Answer(encode_predictions(predictions, resolved, batch=batch).encode(), resolved)
