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
from multiprocessing.connection import Connection
from typing import Any

from xgbpipe.local.sagemaker import s3io
from xgbpipe.local.sagemaker.errors import JobFailure
from xgbpipe.local.sagemaker.hosts import HostGroup
from xgbpipe.local.sagemaker.joblogs import JobLog
from xgbpipe.local.sagemaker.serving import ContainerError, ServingModel
from xgbpipe.local.sagemaker.sharding import round_robin

Report = Callable[[str], None]
MB = 1024 * 1024
_INDEXES = re.compile(r"^\$\[\s*-?\d+\s*(,\s*-?\d+\s*)*\]$")
_SLICE = re.compile(r"^\$\[\s*(-?\d+)?\s*:\s*(-?\d+)?\s*\]$")


class TransformFailure(JobFailure):
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


def _transform_objects(spec: dict[str, Any], keys: list[str], log: JobLog, label: str) -> list[str]:
    """Transform the given input objects, writing each `<key>.out`; their output URIs."""
    settings = spec["job"]
    client = s3io.s3_client(spec.get("s3_endpoint_url"), spec["region"])
    source = s3io.S3Location.parse(
        settings["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    )
    names = [s3io.relative_key(source.key, key) for key in keys]
    log.write(f"Input objects of {label}: {', '.join(names) or '(none)'}")
    log.flush()
    if not keys:
        return []
    model = ServingModel.from_archive(
        s3io.read(client, s3io.S3Location.parse(spec["model_data_url"]))
    )
    destination = s3io.S3Location.parse(settings["TransformOutput"]["S3OutputPath"])
    outputs = []
    for key, name in zip(keys, names, strict=True):
        data = s3io.read(client, s3io.S3Location(source.bucket, key))
        if settings["TransformInput"].get("CompressionType") == "Gzip":
            data = gzip.decompress(data)
        # Each object is written only after it transformed in full, as SageMaker does.
        target = destination.child(name + ".out")
        s3io.write(client, target, transform_object(data, settings, model))
        log.write(f"Wrote {target.uri()}")
        outputs.append(target.uri())
    return outputs


def _logged(spec: dict[str, Any], keys: list[str], number: int, count: int) -> list[str]:
    log = JobLog.transform(spec, number)
    try:
        return _transform_objects(spec, keys, log, f"instance {number} of {count}")
    except Exception as error:
        log.write(f"Transform failed: {error}")
        raise
    finally:
        log.flush()


def _instance(spec: dict[str, Any], conn: Connection) -> None:
    """One instance's process of a multi-instance transform job."""
    outputs = _logged(spec, spec["keys"], spec["number"], spec["count"])
    conn.send(("finished", outputs))


def run_transform_job(spec: dict[str, Any], report: Report) -> dict[str, Any]:
    """Worker entry point: transform every object under the input prefix.

    With InstanceCount N > 1 the objects are dealt out to N instance processes, each object
    whole to one instance (sorted keys round-robin; AWS does not say how it splits them). The
    job completes when every instance has, and fails with the first failure's reason.
    """
    settings = spec["job"]
    client = s3io.s3_client(spec.get("s3_endpoint_url"), spec["region"])
    source = s3io.S3Location.parse(
        settings["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    )
    keys = s3io.list_keys(client, source)
    if not keys:
        raise TransformFailure(f"ClientError: No S3 objects found under S3 URL {source.uri()}")
    count = settings.get("TransformResources", {}).get("InstanceCount", 1)
    if count == 1:
        return {"Outputs": _logged(spec, keys, 1, 1)}
    specs = {
        f"instance-{number}": {**spec, "keys": chosen, "number": number, "count": count}
        for number, chosen in enumerate(round_robin(keys, count), start=1)
    }
    with HostGroup(_instance, specs) as group:
        finished = group.gather("finished")
    return {"Outputs": sorted(uri for outputs in finished.values() for uri in outputs)}
