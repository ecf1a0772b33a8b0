"""boto3 clients, built once per warm Lambda container and swappable in tests (cache_clear)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling, which SageMaker's control plane applies per account.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def client(service: str) -> Any:
    # Typed as Any: the service is chosen at run time, which boto3's stubs cannot overload on.
    factory: Any = boto3.client
    return factory(service, config=_CONFIG)


@cache
def table(name: str) -> Any:
    return boto3.resource("dynamodb", config=_CONFIG).Table(name)


def reset() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    client.cache_clear()
    table.cache_clear()
