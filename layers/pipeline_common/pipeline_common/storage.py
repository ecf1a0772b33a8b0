"""The few S3 operations the pipeline needs, streaming so memory stays flat for any file size."""

from __future__ import annotations

import contextlib
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common import clients

_CHUNK = 1 << 16
# A decompressed part goes up in 8 MB pieces, one at a time: memory stays near 8 MB per part
# whatever its size, and S3 allows 10,000 pieces (80 GB) per object.
_PIECE = 8 << 20
_COPY = TransferConfig(max_concurrency=2)
_CSV = "text/csv"


class NotGzip(ValueError):
    """A `.gz` object that does not decompress; the message says why."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    etag: str
    size: int
    version_id: str | None


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def head(bucket: str, key: str) -> StoredObject | None:
    try:
        response = clients.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    version = response.get("VersionId")
    return StoredObject(
        key=key,
        etag=response["ETag"].strip('"'),
        size=response["ContentLength"],
        version_id=None if version in (None, "null") else version,
    )


def _quoted(etag: str) -> str:
    """An ETag as HTTP's If-Match compares it (the managed copy checks it with HeadObject)."""
    return f'"{etag}"'


def snapshot(bucket: str, source: StoredObject, target_key: str) -> None:
    """Copy the exact version that was seen, so a later upload cannot change a running job."""
    copy_source: dict[str, str] = {"Bucket": bucket, "Key": source.key}
    # The drop's tags stay with the drop (copying them needs s3:GetObjectVersionTagging).
    extra: dict[str, str] = {"TaggingDirective": "REPLACE"}
    if source.version_id:
        copy_source["VersionId"] = source.version_id
    else:
        extra["CopySourceIfMatch"] = _quoted(source.etag)
    # Managed copy: multipart for large files, which also passes CopyObject's 5 GB limit; two
    # at a time, so the snapshot's threads stay within the client's 10 connections.
    clients.client("s3").copy(copy_source, bucket, target_key, ExtraArgs=extra, Config=_COPY)


def list_objects(bucket: str, prefix: str) -> list[StoredObject]:
    """Every object under `prefix`, in key order (versions are not listed)."""
    found: list[StoredObject] = []
    paginator = clients.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        found += [
            StoredObject(item["Key"], item["ETag"].strip('"'), item["Size"], None)
            for item in page.get("Contents", [])
        ]
    return found


def snapshot_decompressed(
    bucket: str, source: StoredObject, target_key: str, take: Callable[[int], None]
) -> None:
    """Copy a gzip object's exact version (by ETag) as plain text, streaming both ways.

    The built-in algorithm reads only plain CSV in File mode (SageMaker decompresses a channel
    only in Pipe mode, which its CSV reader no longer takes). One piece of the upload is in
    memory at a time; `take` is told each piece's size first, and may refuse it by raising.
    """
    client = clients.client("s3")
    body = client.get_object(Bucket=bucket, Key=source.key, IfMatch=_quoted(source.etag))["Body"]
    try:
        with gzip.GzipFile(fileobj=body, mode="rb") as plain:
            _upload_stream(client, plain, bucket, target_key, take)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise NotGzip(str(error) or "the compressed data ends early") from error
    finally:
        body.close()


def _upload_stream(
    client: Any, stream: gzip.GzipFile, bucket: str, key: str, take: Callable[[int], None]
) -> None:
    """Upload what `stream` reads, in pieces of _PIECE bytes (one PutObject if it is smaller)."""
    piece = stream.read(_PIECE)
    take(len(piece))
    if len(piece) < _PIECE:
        client.put_object(Bucket=bucket, Key=key, Body=piece, ContentType=_CSV)
        return
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType=_CSV)["UploadId"]
    try:
        parts: list[dict[str, Any]] = []
        while piece:
            number = len(parts) + 1
            answer = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=piece
            )
            parts.append({"ETag": answer["ETag"], "PartNumber": number})
            piece = stream.read(_PIECE)
            take(len(piece))
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        # The pieces uploaded so far are billed until aborted (a lifecycle rule catches what a
        # timeout leaves); a failing abort must not hide why the upload stopped.
        with contextlib.suppress(ClientError, BotoCoreError):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise


def iter_lines(bucket: str, key: str, max_bytes: int | None = None) -> Iterator[bytes]:
    """The object's lines; with `max_bytes`, only the whole lines within its first bytes."""
    extra = {"Range": f"bytes=0-{max_bytes - 1}"} if max_bytes else {}
    response = clients.client("s3").get_object(Bucket=bucket, Key=key, **extra)
    cut = max_bytes is not None and response["ContentLength"] < _total_size(response)
    lines = response["Body"].iter_lines(chunk_size=_CHUNK, keepends=True)
    previous: bytes | None = None
    for line in lines:
        if previous is not None:
            yield previous
        previous = line
    # The last line of a cut read is partial unless it ended at a line break.
    if previous is not None and not (cut and not previous.endswith(b"\n")):
        yield previous


def _total_size(response: dict[str, Any]) -> int:
    """The whole object's size from a ranged answer's `Content-Range: bytes a-b/total`."""
    content_range = response.get("ContentRange")
    return int(content_range.rpartition("/")[2]) if content_range else response["ContentLength"]


def read_bytes(bucket: str, key: str, version_id: str | None = None) -> bytes:
    extra = {"VersionId": version_id} if version_id else {}
    data: bytes = clients.client("s3").get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return data


def put_json(bucket: str, key: str, document: Any) -> None:
    clients.client("s3").put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
