"""A batch transform job: split, filter, invoke the container in batch mode, join, assemble.

Runs inside a worker process. The data-processing subset is the one CSV users rely on:
InputFilter / OutputFilter as JSONPath `$`, `$[i]`, `$[i,j,...]` or `$[a:b]` over the fields of
a CSV record, and JoinSource Input, which appends the prediction to the original record.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from xgbpipe.local.sagemaker import s3io
from xgbpipe.local.sagemaker.serving import ContainerError, ServingModel

Report = Callable[[str], None]
MB = 1024 * 1024
_INDEXES = re.compile(r"^\$\[\s*-?\d+\s*(,\s*-?\d+\s*)*\]$")
_SLICE = re.compile(r"^\$\[\s*(-?\d+)?\s*:\s*(-?\d+)?\s*\]$")


class TransformFailure(Exception):
    """Fails the job; the message becomes its FailureReason."""


@dataclass(frozen=True)
class FieldFilter:
    """A JSONPath over the fields of one CSV record."""

    expression: str

    def __post_init__(self) -> None:
        expr = self.expression.replace(" ", "")
        if expr != "$" and not _INDEXES.match(expr) and not _SLICE.match(expr):
            raise ValueError(
                f"JSONPath expression '{self.expression}' is not supported: use $, $[i], "
                "$[i,j,...] or $[start:end]"
            )

    def apply(self, fields: list[str]) -> list[str]:
        expr = self.expression.replace(" ", "")
        if expr == "$":
            return fields
        sliced = _SLICE.match(expr)
        if sliced:
            start, end = (int(part) if part else None for part in sliced.groups())
            return fields[start:end]
        try:
            return [fields[int(index)] for index in expr[2:-1].split(",")]
        except IndexError as error:
            raise TransformFailure(
                f"JSONPath {self.expression} selects a field the record does not have"
            ) from error


def split_records(data: bytes, split_type: str) -> list[bytes]:
    if split_type == "Line":
        return [line for line in data.splitlines() if line.strip()]
    if split_type == "None":
        return [data]
    raise TransformFailure(f"SplitType {split_type} is not supported by the local SageMaker.")


def mini_batches(records: list[bytes], strategy: str, max_bytes: int) -> Iterator[list[bytes]]:
    """SingleRecord sends one record per request; MultiRecord packs up to MaxPayloadInMB."""
    batch: list[bytes] = []
    size = 0
    for record in records:
        if len(record) > max_bytes:
            raise TransformFailure(
                f"A record of {len(record)} bytes exceeds MaxPayloadInMB ({max_bytes // MB} MB)."
            )
        if batch and (strategy != "MultiRecord" or size + len(record) + 1 > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += len(record) + 1
    if batch:
        yield batch


def _fields(record: bytes) -> list[str]:
    return record.decode("utf-8").rstrip("\r").split(",")


def transform_object(data: bytes, settings: dict[str, Any], model: ServingModel) -> bytes:
    """Transform one input object into the bytes of its `.out` object."""
    transform_input = settings["TransformInput"]
    processing = settings.get("DataProcessing", {})
    input_filter = FieldFilter(processing.get("InputFilter", "$"))
    output_filter = FieldFilter(processing.get("OutputFilter", "$"))
    join_input = processing.get("JoinSource", "None") == "Input"
    output = settings["TransformOutput"]
    assemble_lines = output.get("AssembleWith", "None") == "Line"
    content_type = transform_input.get("ContentType")
    accept = output.get("Accept")
    records = split_records(data, transform_input.get("SplitType", "None"))
    max_bytes = settings.get("MaxPayloadInMB", 6) * MB
    strategy = settings.get("BatchStrategy", "MultiRecord")

    pieces: list[bytes] = []
    for batch in mini_batches(records, strategy, max_bytes):
        filtered = [",".join(input_filter.apply(_fields(record))).encode() for record in batch]
        try:
            answer = model.invoke(b"\n".join(filtered), content_type, accept, batch=True)
        except ContainerError as error:
            raise TransformFailure(
                f"ClientError: See job logs for more information. The model container answered "
                f"{error.status}: {error.message}"
            ) from error
        body = answer.body if answer else b""
        if not join_input and output_filter.expression.replace(" ", "") == "$":
            pieces.append(body)
            continue
        results = body.decode("utf-8").splitlines()
        if len(results) != len(batch):
            raise TransformFailure(
                f"The model returned {len(results)} results for {len(batch)} records; "
                "cannot join them to the input."
            )
        for record, result in zip(batch, results, strict=True):
            joined = _fields(record) + result.split(",") if join_input else result.split(",")
            pieces.append((",".join(output_filter.apply(joined)) + "\n").encode())
    if assemble_lines:
        return b"".join(piece if piece.endswith(b"\n") else piece + b"\n" for piece in pieces)
    return b"".join(pieces)


def run_transform_job(spec: dict[str, Any], report: Report) -> dict[str, Any]:
    """Worker entry point: transform every object under the input prefix."""
    settings = spec["job"]
    client = s3io.s3_client(spec.get("s3_endpoint_url"), spec["region"])
    model = ServingModel.from_archive(
        s3io.read(client, s3io.S3Location.parse(spec["model_data_url"]))
    )
    source = s3io.S3Location.parse(
        settings["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    )
    destination = s3io.S3Location.parse(settings["TransformOutput"]["S3OutputPath"])
    keys = s3io.list_keys(client, source)
    if not keys:
        raise TransformFailure(f"ClientError: No S3 objects found under S3 URL {source.uri()}")
    outputs = []
    for key in keys:
        data = s3io.read(client, s3io.S3Location(source.bucket, key))
        if settings["TransformInput"].get("CompressionType") == "Gzip":
            data = gzip.decompress(data)
        # Each object is written only after it transformed in full, as SageMaker does.
        target = destination.child(s3io.relative_key(source.key, key) + ".out")
        s3io.write(client, target, transform_object(data, settings, model))
        outputs.append(target.uri())
    return {"Outputs": outputs}
