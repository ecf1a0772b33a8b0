"""The few S3 operations the pipeline needs, streaming so memory stays flat for any file size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients

_CHUNK = 1 << 16


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


def snapshot(bucket: str, source: StoredObject, target_key: str) -> None:
    """Copy the exact version that was seen, so a later upload cannot change a running job."""
    copy_source: dict[str, str] = {"Bucket": bucket, "Key": source.key}
    # The drop's tags stay with the drop (copying them needs s3:GetObjectVersionTagging).
    extra: dict[str, str] = {"TaggingDirective": "REPLACE"}
    if source.version_id:
        copy_source["VersionId"] = source.version_id
    else:
        extra["CopySourceIfMatch"] = source.etag
    # Managed copy: multipart for large files, which also passes CopyObject's 5 GB limit.
    clients.client("s3").copy(copy_source, bucket, target_key, ExtraArgs=extra)


def iter_lines(bucket: str, key: str) -> Iterator[bytes]:
    body = clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    yield from body.iter_lines(chunk_size=_CHUNK)


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
