"""The Runs table: one item per run, plus one item per model naming its live version.

Every transition is a conditional write, so a duplicated event (S3 and EventBridge deliver at
least once) cannot move a run twice, and only one invocation sends a run's notification.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients
from pipeline_common.naming import RunRef

# Sort key of the per-model item; run ids are hex, so it cannot clash with one.
MODEL_ITEM = "_model"
_NOTIFY_CLAIM_TTL = timedelta(minutes=5)
# Attribute names DynamoDB reserves as words of its expressions.
_NAMES = {"#history": "history", "#rollback": "rollback"}


class Stage(StrEnum):
    VALIDATING = "validating"
    TRAINING = "training"
    TRANSFORMING = "transforming"
    EVALUATING = "evaluating"
    DEPLOYING = "deploying"
    DONE = "done"


class Status(StrEnum):
    IN_PROGRESS = "in_progress"
    DEPLOYED = "deployed"
    REJECTED = "rejected"
    INVALID = "invalid"
    FAILED = "failed"
    STOPPED = "stopped"


def stamp(moment: datetime) -> str:
    """The table's timestamps: ISO 8601 UTC, so they also order as strings."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> str:
    return stamp(datetime.now(UTC))


def to_item(value: Any) -> Any:
    """Python values -> DynamoDB's (floats become Decimals; NaN and inf cannot be stored)."""
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        converted = {k: to_item(v) for k, v in value.items()}
        return {k: v for k, v in converted.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_item(v) for v in value]
    return value


def from_item(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: from_item(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_item(v) for v in value]
    return value


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class RunsTable:
    def __init__(self, name: str) -> None:
        self._table = clients.table(name)

    def begin(self, ref: RunRef, fields: Mapping[str, Any]) -> bool:
        """Create the run; re-enter one a crash left in validation. False when it got further."""
        stamp = now()
        if not self._transition(
            ref,
            {"stage": Stage.VALIDATING, "status": Status.IN_PROGRESS, **fields},
            condition="attribute_not_exists(run_id) OR (#stage = :validating AND "
            "#status = :in_progress)",
            extra_values={":validating": Stage.VALIDATING, ":in_progress": Status.IN_PROGRESS},
            created_at=stamp,
        ):
            return False
        self._table.update_item(
            Key=self._model_key(ref.model),
            UpdateExpression="SET latest_run_id = :run, updated_at = :now",
            ExpressionAttributeValues={":run": ref.run_id, ":now": stamp},
        )
        return True

    def advance(self, ref: RunRef, frm: Stage, to: Stage, fields: Mapping[str, Any]) -> bool:
        """Move an in-progress run from one stage to the next; False if it is not there."""
        return self._transition(
            ref,
            {"stage": to, **fields},
            condition="#stage = :from AND #status = :in_progress",
            extra_values={":from": frm, ":in_progress": Status.IN_PROGRESS},
        )

    def finish(
        self, ref: RunRef, status: Status, reason: str, fields: Mapping[str, Any] | None = None
    ) -> bool:
        """Record a terminal state once; False when the run had already ended."""
        return self._transition(
            ref,
            {
                "stage": Stage.DONE,
                "status": status,
                "reason": reason,
                "finished_at": now(),
                **(fields or {}),
            },
            condition="#status = :in_progress",
            extra_values={":in_progress": Status.IN_PROGRESS},
        )

    def get(self, ref: RunRef) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"model": ref.model, "run_id": ref.run_id}).get("Item")
        return from_item(item) if item else None

    def model(self, model: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key=self._model_key(model)).get("Item")
        return from_item(item) if item else None

    def set_live(
        self, ref: RunRef, live: Mapping[str, Any], notice: Mapping[str, Any] | None = None
    ) -> bool:
        """Make the deploying run the live one, add it to the model's history, release the
        endpoint, all in one write."""
        entry = {
            "version": ref.run_id,
            "at": live["deployed_at"],
            "via": live.get("via", "drop"),
            "rolled_back_from": live.get("rolled_back_from"),
        }
        return self._conditionally(
            Key=self._model_key(ref.model),
            UpdateExpression="SET live = :live, updated_at = :now, "
            "#history = list_append(if_not_exists(#history, :empty), :entry)"
            + (", pending_notice = :notice" if notice else "")
            + " REMOVE deploying_run_id, #rollback, retired",
            ConditionExpression="deploying_run_id = :run",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":live": to_item(live),
                ":run": ref.run_id,
                ":now": now(),
                ":empty": [],
                ":entry": [to_item(entry)],
                **({":notice": to_item(notice)} if notice else {}),
            },
        )

    def begin_rollback(self, ref: RunRef, rolled_back_from: str) -> bool:
        """Claim the endpoint to put an earlier version back; False while a run deploys."""
        return self._conditionally(
            Key=self._model_key(ref.model),
            UpdateExpression="SET deploying_run_id = :run, #rollback = :request, updated_at = :now",
            ConditionExpression="attribute_not_exists(deploying_run_id)",
            ExpressionAttributeNames={"#rollback": "rollback"},
            ExpressionAttributeValues={
                ":run": ref.run_id,
                ":request": {"to": ref.run_id, "from": rolled_back_from, "requested_at": now()},
                ":now": now(),
            },
        )

    def end_rollback(self, ref: RunRef, notice: Mapping[str, Any] | None = None) -> bool:
        """Release the endpoint after a rollback that did not happen."""
        return self._conditionally(
            Key=self._model_key(ref.model),
            UpdateExpression="REMOVE deploying_run_id, #rollback SET updated_at = :now"
            + (", pending_notice = :notice" if notice else ""),
            ConditionExpression="deploying_run_id = :run",
            ExpressionAttributeNames={"#rollback": "rollback"},
            ExpressionAttributeValues={
                ":run": ref.run_id,
                ":now": now(),
                **({":notice": to_item(notice)} if notice else {}),
            },
        )

    def notice_sent(self, model: str) -> None:
        """Forget the model's pending notice (written with the change it announces)."""
        self._table.update_item(
            Key=self._model_key(model), UpdateExpression="REMOVE pending_notice"
        )

    def retire(self, model: str, reason: str) -> None:
        """The model serves no more: no live version, and why, for the API to say."""
        self._table.update_item(
            Key=self._model_key(model),
            UpdateExpression="SET retired = :retired, updated_at = :now REMOVE live",
            ExpressionAttributeValues={
                ":retired": {"at": now(), "reason": reason},
                ":now": now(),
            },
        )

    def deployed_versions(self, model: str) -> list[dict[str, Any]]:
        """Every run of the model that went live, newest first."""
        request: dict[str, Any] = {
            "KeyConditionExpression": "model = :model",
            "FilterExpression": "#status = :deployed",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":model": model, ":deployed": Status.DEPLOYED.value},
        }
        found: list[dict[str, Any]] = []
        while True:
            page = self._table.query(**request)
            found.extend(from_item(item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda run: str(run.get("deployed_at", "")), reverse=True)

    def wait_for_endpoint(self, ref: RunRef) -> None:
        """Park a scored-to-be run until the endpoint's current deployment settles."""
        self._table.update_item(
            Key={"model": ref.model, "run_id": ref.run_id},
            UpdateExpression="SET waiting_since = if_not_exists(waiting_since, :now)",
            ExpressionAttributeValues={":now": now()},
        )

    def waiting_for_endpoint(self, model: str) -> list[RunRef]:
        """The model's parked runs, oldest first."""
        items = self._table.query(
            KeyConditionExpression="model = :model",
            FilterExpression="#stage = :transforming AND attribute_exists(waiting_since)",
            ExpressionAttributeNames={"#stage": "stage"},
            ExpressionAttributeValues={":model": model, ":transforming": Stage.TRANSFORMING.value},
        )["Items"]
        ordered = sorted(items, key=lambda item: str(item["waiting_since"]))
        return [RunRef(model, str(item["run_id"])) for item in ordered]

    def set_deploying(self, ref: RunRef) -> bool:
        """Claim the model's endpoint for this run; False while another run is changing it."""
        return self._conditionally(
            Key=self._model_key(ref.model),
            UpdateExpression="SET deploying_run_id = :run, updated_at = :now",
            ConditionExpression="attribute_not_exists(deploying_run_id) OR deploying_run_id = :run",
            ExpressionAttributeValues={":run": ref.run_id, ":now": now()},
        )

    def clear_deploying(self, ref: RunRef) -> bool:
        """Release the endpoint once this run's change has settled."""
        return self._conditionally(
            Key=self._model_key(ref.model),
            UpdateExpression="REMOVE deploying_run_id SET updated_at = :now",
            ConditionExpression="deploying_run_id = :run",
            ExpressionAttributeValues={":run": ref.run_id, ":now": now()},
        )

    def clear_live(self, model: str, reason: str) -> None:
        """The endpoint is gone; a reason already recorded (a deletion on request) stays."""
        self._table.update_item(
            Key=self._model_key(model),
            UpdateExpression="REMOVE live SET updated_at = :now, "
            "retired = if_not_exists(retired, :retired)",
            ExpressionAttributeValues={":now": now(), ":retired": {"at": now(), "reason": reason}},
        )

    def claim_notification(self, ref: RunRef) -> bool:
        """One invocation announces an ended run; a claim older than five minutes has died."""
        expired = stamp(datetime.now(UTC) - _NOTIFY_CLAIM_TTL)
        return self._conditionally(
            Key={"model": ref.model, "run_id": ref.run_id},
            UpdateExpression="SET notifying_at = :now",
            ConditionExpression="attribute_not_exists(notified_at) AND "
            "(attribute_not_exists(notifying_at) OR notifying_at < :expired)",
            ExpressionAttributeValues={":now": now(), ":expired": expired},
        )

    def mark_notified(self, ref: RunRef) -> None:
        self._table.update_item(
            Key={"model": ref.model, "run_id": ref.run_id},
            UpdateExpression="SET notified_at = :now",
            ExpressionAttributeValues={":now": now()},
        )

    def model_items(self, having: str) -> Iterator[dict[str, Any]]:
        """The model items with the attribute, such as live (one item per model: a small scan)."""
        yield from self._scan(
            {
                "FilterExpression": "run_id = :model_item AND attribute_exists(#having)",
                "ExpressionAttributeNames": {"#having": having},
                "ExpressionAttributeValues": {":model_item": MODEL_ITEM},
            }
        )

    def unsettled(self) -> Iterator[dict[str, Any]]:
        """Runs not yet over, or over but not yet announced (one item per run: a small scan)."""
        yield from self._scan(
            {
                "FilterExpression": "attribute_exists(#status) AND "
                "(#status = :in_progress OR attribute_not_exists(notified_at))",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":in_progress": Status.IN_PROGRESS.value},
            }
        )

    def _scan(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self._table.scan(**request)
            yield from (from_item(item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    @staticmethod
    def _model_key(model: str) -> dict[str, str]:
        return {"model": model, "run_id": MODEL_ITEM}

    def _transition(
        self,
        ref: RunRef,
        fields: Mapping[str, Any],
        condition: str,
        extra_values: Mapping[str, Any],
        created_at: str | None = None,
    ) -> bool:
        names = {k: v for k, v in (("#stage", "stage"), ("#status", "status")) if k in condition}
        values: dict[str, Any] = {":now": now(), **extra_values}
        sets = ["updated_at = :now"]
        for index, (name, value) in enumerate(fields.items()):
            if value is None:
                continue
            names[f"#f{index}"] = name
            values[f":f{index}"] = to_item(value)
            sets.append(f"#f{index} = :f{index}")
        if created_at:
            values[":created"] = created_at
            sets.append("created_at = if_not_exists(created_at, :created)")
        return self._conditionally(
            Key={"model": ref.model, "run_id": ref.run_id},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def _conditionally(self, **update: Any) -> bool:
        """Apply a conditional update; False when its condition does not hold."""
        try:
            self._table.update_item(**update)
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True
