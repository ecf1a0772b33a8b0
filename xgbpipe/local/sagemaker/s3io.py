"""The few S3 operations the jobs need, through boto3 (so the local cloud's S3 serves them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3:// URI: {uri}")
        return cls(parsed.netloc, parsed.path.lstrip("/"))

    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, *parts: str) -> S3Location:
        base = self.key.rstrip("/")
        key = "/".join(part.strip("/") for part in (base, *parts) if part)
        return S3Location(self.bucket, key)


def aws_client(service: str, endpoint_url: str | None, region: str) -> Any:
    """A client of the AWS service the local SageMaker works with (moto's, in a local cloud)."""
    factory: Any = boto3.client
    return factory(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


def s3_client(endpoint_url: str | None, region: str) -> Any:
    return aws_client("s3", endpoint_url, region)


def list_keys(client: Any, prefix: S3Location) -> list[str]:
    """Every key under an S3Prefix, the way SageMaker expands it (a plain prefix match)."""
    keys: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
        keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    return keys


def read(client: Any, location: S3Location) -> bytes:
    body: bytes = client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    return body


def write(client: Any, location: S3Location, data: bytes) -> None:
    client.put_object(Bucket=location.bucket, Key=location.key, Body=data)


def relative_key(prefix: str, key: str) -> str:
    """The key below the prefix's folder: `data/test` + `data/test.csv` gives `test.csv`."""
    folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(folder) :]
