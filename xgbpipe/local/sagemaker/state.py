"""Persisting the control plane's records as JSON, so a restarted server knows its resources."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

_DATETIME_KEY = "$datetime"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME_KEY: value.isoformat()}
    raise TypeError(f"cannot store {type(value).__name__}")


def _decode(value: dict[str, Any]) -> Any:
    if set(value) == {_DATETIME_KEY}:
        return datetime.fromisoformat(value[_DATETIME_KEY])
    return value


def save(path: Path, records: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous state intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(records, default=_encode, indent=1))
    os.replace(temporary, path)


def load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text(), object_hook=_decode)
    return loaded
