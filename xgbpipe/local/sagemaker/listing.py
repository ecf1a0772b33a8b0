"""Describe and List responses as projections of stored records onto botocore's shapes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from xgbpipe.local.sagemaker.validation import service_model

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def _as_time(value: float | None, default: datetime) -> datetime:
    """JSON 1.1 sends timestamps as epoch seconds."""
    return default if value is None else datetime.fromtimestamp(value, UTC)


def page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
    """One page of a List call; NextToken is the offset of the next page."""
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 100)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def project(operation: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record restricted to the members the operation's output shape names."""
    shape = service_model("sagemaker").operation_model(operation).output_shape
    assert shape is not None
    return {name: copy.deepcopy(record[name]) for name in shape.members if name in record}


def summaries(shape_name: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """List entries: each record restricted to the summary shape's members."""
    members = service_model("sagemaker").shape_for(shape_name).members  # type: ignore[attr-defined]
    return [{name: record[name] for name in members if name in record} for record in records]


def filtered(
    records: list[dict[str, Any]], params: dict[str, Any], name_key: str, status_key: str | None
) -> list[dict[str, Any]]:
    """The records a List call's NameContains, StatusEquals and time filters keep, sorted."""
    found = [
        record
        for record in records
        if params.get("NameContains", "").lower() in record[name_key].lower()
        and (status_key is None or params.get("StatusEquals") in (None, record[status_key]))
        and _as_time(params.get("CreationTimeAfter"), _EARLIEST) < record["CreationTime"]
        and record["CreationTime"] < _as_time(params.get("CreationTimeBefore"), _LATEST)
    ]
    sort_key = {"Name": name_key, "Status": status_key or name_key}.get(
        params.get("SortBy", "CreationTime"), "CreationTime"
    )
    found.sort(
        key=lambda record: record[sort_key],
        reverse=params.get("SortOrder", "Descending") == "Descending",
    )
    return found
