"""The client's side of a stack, deployed on AWS (found by its name) or the local cloud.

Uploads go to the data bucket, runs are read from the Runs table, predictions go through the
prediction API, and `delete` removes the endpoint the way the seed's last step does; the stack's
track_endpoint function then takes the model off the live record.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from xgbpipe.local import control

MODEL_ITEM = "_model"
DATA_FILES = ("train.csv", "validation.csv", "test.csv")
EXTRA_FILES = ("schema.json", "hyperparameters.json", "pipeline.json")
# The files whose arrival starts a run, and whose ETags name it.
TRIGGER_FILES = (*DATA_FILES, "hyperparameters.json", "pipeline.json")
# A channel may be a folder of parts, complete once its marker is there (the stack's drops.py).
PART_SUFFIXES = (".csv", ".csv.gz")
SUCCESS_MARKER = "_SUCCESS"
STAGES = ("validating", "training", "transforming", "evaluating", "deploying", "done")
# Requests stay under the API's limits (10,000 rows, 5 MB of body) with room to spare.
BATCH_ROWS = 5_000
BATCH_BYTES = 4_000_000
_MODEL_NAME = re.compile(r"^[a-z0-9](?:-?[a-z0-9])*$")
_MODEL_NAME_RULE = "lower-case letters, digits and single hyphens, at most 32 characters"


class StackError(RuntimeError):
    """Anything the client cannot do; the message is one line that says what to fix."""


@dataclass(frozen=True)
class Stack:
    """Where a stack's parts are, and the credentials to reach them."""

    name: str
    bucket: str
    api_url: str
    api_key: str
    runs_table: str
    session: boto3.Session
    # Service -> endpoint URL for the local cloud; empty on AWS.
    endpoints: Mapping[str, str] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        endpoint = self.endpoints.get(service, self.endpoints.get("*"))
        return self.session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    def table(self) -> Any:
        endpoint = self.endpoints.get("dynamodb", self.endpoints.get("*"))
        return self.session.resource("dynamodb", endpoint_url=endpoint).Table(self.runs_table)

    @property
    def api(self) -> ModelApi:
        return ModelApi(self.api_url, self.api_key)


def find_stack(
    stack_name: str | None,
    local: bool,
    state_dir: Path = control.DEFAULT_STATE_DIR,
    profile: str | None = None,
    region: str | None = None,
) -> Stack:
    """The deployed stack named, else the local cloud (asked for, or found running)."""
    if stack_name and not local:
        return deployed_stack(stack_name, profile, region)
    try:
        state = control.running_state(state_dir)
    except control.LocalCloudError as error:
        if local:
            raise StackError(f"{error}; start it with `xgbpipe local up`") from None
        raise StackError(
            "no stack given and no local cloud running: pass --stack NAME for a deployed "
            "stack, or start the local cloud with `xgbpipe local up`"
        ) from None
    return local_stack(state.environment)


def local_stack(environment: Mapping[str, str]) -> Stack:
    """The local cloud's stack, from the exports `xgbpipe local env` prints."""
    session = boto3.Session(
        region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
    )
    return Stack(
        name="local",
        bucket=environment["XGBPIPE_BUCKET"],
        api_url=environment["XGBPIPE_API_URL"],
        api_key=environment["XGBPIPE_API_KEY"],
        runs_table=environment["XGBPIPE_RUNS_TABLE"],
        session=session,
        endpoints={
            "*": environment["AWS_ENDPOINT_URL"],
            "sagemaker": environment["AWS_ENDPOINT_URL_SAGEMAKER"],
            "sagemaker-runtime": environment["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"],
        },
    )


def deployed_stack(name: str, profile: str | None, region: str | None) -> Stack:
    """A stack deployed with `sam deploy`, found through its CloudFormation outputs."""
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        described = session.client("cloudformation").describe_stacks(StackName=name)
        outputs = {
            output["OutputKey"]: output["OutputValue"]
            for output in described["Stacks"][0].get("Outputs", [])
        }
        missing = {"DataBucketName", "ApiUrl", "ApiKeyId", "RunsTableName"} - set(outputs)
        if missing:
            raise StackError(
                f"stack {name} has no output {', '.join(sorted(missing))}: is it an xgbpipe stack?"
            )
        key = session.client("apigateway").get_api_key(
            apiKey=outputs["ApiKeyId"], includeValue=True
        )
    except ClientError as error:
        raise StackError(f"cannot read stack {name}: {_aws_message(error)}") from None
    except BotoCoreError as error:
        raise StackError(f"cannot reach AWS for stack {name}: {error}") from None
    return Stack(
        name=name,
        bucket=outputs["DataBucketName"],
        api_url=outputs["ApiUrl"],
        api_key=key["value"],
        runs_table=outputs["RunsTableName"],
        session=session,
    )


def _aws_message(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")


def check_model_name(model: str) -> None:
    """The stack's own rule, checked here so a bad name fails before anything is uploaded."""
    if len(model) > 32 or not _MODEL_NAME.match(model):
        raise StackError(f"model name {model!r} must be {_MODEL_NAME_RULE}")


class ModelApi:
    """The stack's API: a model's description, predictions, versions, rollback and deletion."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self.api_url = api_url
        self.api_key = api_key

    def describe(self, model: str) -> dict[str, Any] | None:
        status, body = self._call("GET", f"/models/{model}")
        if status == 404:
            return None
        return _answer(status, body, f"GET /models/{model}")

    def predict(self, model: str, rows: Sequence[Sequence[float | None]]) -> dict[str, Any]:
        status, body = self._call(
            "POST", f"/models/{model}/predictions", {"instances": [list(r) for r in rows]}
        )
        return _answer(status, body, "the API")

    def versions(self, model: str) -> dict[str, Any]:
        status, body = self._call("GET", f"/models/{model}/versions")
        return _answer(status, body, f"GET /models/{model}/versions")

    def rollback(self, model: str, version: str | None = None) -> dict[str, Any]:
        """Start putting a version back (the previous one unless named)."""
        status, body = self._call(
            "POST", f"/models/{model}/rollback", {"version": version} if version else {}
        )
        return _answer(status, body, f"POST /models/{model}/rollback")

    def delete(self, model: str) -> dict[str, Any]:
        """Delete the model's endpoint; its versions stay, for a rollback."""
        status, body = self._call("DELETE", f"/models/{model}")
        return _answer(status, body, f"DELETE /models/{model}")

    def _call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 - the API URL is http(s) by construction
            f"{self.api_url}{path}",
            method=method,
            data=None if payload is None else json.dumps(payload).encode(),
            headers={"x-api-key": self.api_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return response.status, _decoded(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _decoded(error.read())
        except (urllib.error.URLError, OSError) as error:
            raise StackError(
                f"cannot reach the prediction API at {self.api_url}: {error}"
            ) from None


def _decoded(text: bytes) -> Any:
    try:
        return json.loads(text or b"null")
    except ValueError:
        return text.decode(errors="replace")


def _answer(status: int, body: Any, what: str) -> dict[str, Any]:
    if status not in (200, 202):
        raise StackError(f"{what} answered {status}: {_message(body)}")
    if not isinstance(body, dict):
        raise StackError(f"{what} answered 200 with {str(body)[:80]!r}, not a JSON object")
    return body


def _message(body: Any) -> str:
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


def describe_metrics(metrics: Mapping[str, Any] | None) -> str:
    """`rmse 2.176, mae 1.536, r2 0.5338`: a run's metrics on one line."""
    return ", ".join(f"{k} {v:.4g}" for k, v in (metrics or {}).items() if k != "rows")


def plain(value: Any) -> Any:
    """DynamoDB's Decimals as ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _aws(action: str, call: Callable[[], Any]) -> Any:
    """Run one AWS call; any failure of it becomes a one-line StackError."""
    try:
        return call()
    except ClientError as error:
        raise StackError(f"{action}: {_aws_message(error)}") from None
    except (BotoCoreError, Boto3Error, OSError) as error:
        # upload_file wraps S3's errors in S3UploadFailedError, a Boto3Error.
        raise StackError(f"{action}: {error}") from None


# ------------------------------------------------------------------ runs


def list_models(stack: Stack) -> list[dict[str, Any]]:
    table = stack.table()
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"FilterExpression": Attr("run_id").eq(MODEL_ITEM)}
    while True:
        page = _aws("cannot read the Runs table", lambda: table.scan(**request))
        items.extend(plain(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: str(item["model"]))
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def model_item(stack: Stack, model: str) -> dict[str, Any] | None:
    table = stack.table()
    found = _aws(
        "cannot read the Runs table",
        lambda: table.get_item(Key={"model": model, "run_id": MODEL_ITEM}),
    )
    return plain(found["Item"]) if "Item" in found else None


def list_runs(stack: Stack, model: str) -> list[dict[str, Any]]:
    """The model's runs, newest first."""
    table = stack.table()
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"KeyConditionExpression": Key("model").eq(model)}
    while True:
        page = _aws("cannot read the Runs table", lambda: table.query(**request))
        items.extend(plain(i) for i in page["Items"] if i["run_id"] != MODEL_ITEM)
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda item: str(item.get("created_at", "")), reverse=True)


def find_run(stack: Stack, run_id: str, model: str | None = None) -> dict[str, Any]:
    table = stack.table()
    if model:
        found = _aws(
            "cannot read the Runs table",
            lambda: table.get_item(Key={"model": model, "run_id": run_id}),
        )
        if "Item" in found:
            return dict(plain(found["Item"]))
    else:
        request: dict[str, Any] = {"FilterExpression": Attr("run_id").eq(run_id)}
        while True:
            page = _aws("cannot read the Runs table", lambda: table.scan(**request))
            if page["Items"]:
                return dict(plain(page["Items"][0]))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    raise StackError(f"there is no run {run_id}; `xgbpipe status MODEL` lists the runs")


def is_finished(run: Mapping[str, Any]) -> bool:
    """Ended; a deployed run is live by then (the stack sets live before it records deployed)."""
    return run.get("stage") == "done"


def watch(
    stack: Stack,
    model: str,
    run_id: str,
    on_change: Callable[[dict[str, Any]], None],
    timeout: float,
    interval: float = 0.5,
) -> dict[str, Any]:
    """Follow a run until it ends; `on_change` sees each new state of its record."""
    deadline = time.monotonic() + timeout
    shown: tuple[Any, ...] = ()
    while True:
        run = find_run(stack, run_id, model)
        state = (run.get("stage"), run.get("status"), run.get("updated_at"))
        if state != shown:
            shown = state
            on_change(run)
        if is_finished(run):
            return run
        if time.monotonic() > deadline:
            raise StackError(
                f"run {run_id} is still {run.get('stage')} after {timeout:.0f}s; "
                f"`xgbpipe status {model} --watch` follows it on"
            )
        time.sleep(interval)


# ------------------------------------------------------------------ upload


def drop_files(directory: Path) -> dict[str, Path]:
    """The files of DIR that make a drop: each channel as its CSV or as a folder of parts
    (`train/*.csv` or `*.csv.gz`), and schema/hyperparameters/pipeline settings if there."""
    if not directory.is_dir():
        raise StackError(f"{directory} is not a directory; `xgbpipe prepare` writes one")
    data: dict[str, Path] = {}
    missing = []
    for name in DATA_FILES:
        folder = directory / name.removesuffix(".csv")
        if (directory / name).is_file():
            data[name] = directory / name
        elif folder.is_dir():
            parts = sorted(
                path
                for path in folder.iterdir()
                if path.is_file()
                and path.name.endswith(PART_SUFFIXES)
                and not path.name.startswith(("_", "."))
            )
            if not parts:
                raise StackError(f"{folder} holds no parts (files named *.csv or *.csv.gz)")
            data.update({f"{folder.name}/{path.name}": path for path in parts})
        else:
            missing.append(name)
    if missing:
        raise StackError(
            f"{directory} has no {', '.join(missing)}; a drop needs train.csv, validation.csv "
            "and test.csv (`xgbpipe prepare` writes them), or a folder of parts for each"
        )
    present = [name for name in EXTRA_FILES if (directory / name).is_file()]
    # The data last: each CSV's or marker's arrival checks whether the drop is complete.
    return {**{name: directory / name for name in present}, **data}


def folder_etag(parts: Mapping[str, str]) -> str:
    """What the Runs table records as a folder channel's ETag: a digest of its parts'
    `name=ETag` lines (the stack's drops.Channel.record; a unit test keeps the two agreeing)."""
    lines = "".join(sorted(f"{name}={etag}\n" for name, etag in parts.items()))
    return hashlib.sha256(lines.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Drop:
    """What a drop left in datasets/<model>/: the trigger files' ETags as S3 has them now."""

    etags: Mapping[str, str]
    # Trigger files this upload did not bring, left by an earlier one: the stack uses them too.
    leftovers: tuple[str, ...] = ()


def upload(
    stack: Stack,
    model: str,
    files: Mapping[str, Path],
    progress: Callable[[str, int], None] | None = None,
) -> Drop:
    """Put the files under datasets/<model>/, in order, each folder of parts last of all with
    its `_SUCCESS` marker. What each channel replaces goes first: its other form, and for a
    folder the parts of an earlier upload, so the drop is exactly this directory's."""
    check_model_name(model)
    s3 = stack.client("s3")
    prefix = f"datasets/{model}/"
    folders = sorted({name.split("/")[0] for name in files if "/" in name})
    _delete_objects(stack, [prefix + SUCCESS_MARKER])
    for name in DATA_FILES:
        channel = name.removesuffix(".csv")
        replaced = [str(item["Key"]) for item in _listed(stack, f"{prefix}{channel}/")]
        if channel in folders:
            replaced.append(prefix + name)
        _delete_objects(stack, replaced)
    for name, path in files.items():
        key = prefix + name
        callback = None if progress is None else functools.partial(progress, name)
        _aws(
            f"cannot upload {path} to s3://{stack.bucket}/{key}",
            functools.partial(s3.upload_file, str(path), stack.bucket, key, Callback=callback),
        )
    for folder in folders:
        key = f"{prefix}{folder}/{SUCCESS_MARKER}"
        _aws(
            f"cannot upload s3://{stack.bucket}/{key}",
            functools.partial(s3.put_object, Bucket=stack.bucket, Key=key, Body=b""),
        )
    etags = {}
    for name in TRIGGER_FILES:
        etag = _etag(stack, prefix + name)
        if etag is not None:
            etags[name] = etag
    leftovers = tuple(name for name in etags if name not in files)
    for folder in folders:
        parts = _listed_etags(stack, f"{prefix}{folder}/")
        etags[f"{folder}/"] = folder_etag(
            {f"{folder}/{leaf}": etag for leaf, etag in parts.items()}
        )
    return Drop(etags, leftovers)


def _listed(stack: Stack, prefix: str) -> list[dict[str, Any]]:
    s3 = stack.client("s3")
    pages = _aws(
        f"cannot list s3://{stack.bucket}/{prefix}",
        lambda: (
            s3.get_paginator("list_objects_v2")
            .paginate(Bucket=stack.bucket, Prefix=prefix)
            .build_full_result()
        ),
    )
    return list(pages.get("Contents", []))


def _listed_etags(stack: Stack, prefix: str) -> dict[str, str]:
    """The data files of a folder (not `_`/`.` names) by leaf name, with their ETags."""
    return {
        key[len(prefix) :]: str(item["ETag"]).strip('"')
        for item in _listed(stack, prefix)
        if not (key := str(item["Key"]))[len(prefix) :].startswith(("_", "."))
        and not key.endswith("/")
    }


def _delete_objects(stack: Stack, keys: list[str]) -> None:
    s3 = stack.client("s3")
    for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys a call
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        _aws(
            f"cannot upload to s3://{stack.bucket}/ (clearing what the upload replaces)",
            functools.partial(
                s3.delete_objects, Bucket=stack.bucket, Delete={"Objects": batch, "Quiet": True}
            ),
        )


def _etag(stack: Stack, key: str) -> str | None:
    s3 = stack.client("s3")
    try:
        return str(s3.head_object(Bucket=stack.bucket, Key=key)["ETag"]).strip('"')
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise StackError(f"cannot read s3://{stack.bucket}/{key}: {_aws_message(error)}") from None
    except BotoCoreError as error:
        raise StackError(f"cannot reach s3://{stack.bucket}: {error}") from None


def run_of_drop(
    stack: Stack, model: str, drop: Drop, timeout: float = 60.0, interval: float = 0.5
) -> dict[str, Any]:
    """The run the stack started for these files (or the earlier run of the very same files)."""
    deadline = time.monotonic() + timeout
    while True:
        for run in list_runs(stack, model):
            inputs = run.get("inputs") or {}
            recorded = {
                name: str(entry.get("etag", "")).strip('"') for name, entry in inputs.items()
            }
            if recorded == dict(drop.etags):
                return run
        if time.monotonic() > deadline:
            raise StackError(
                f"the upload started no run within {timeout:.0f}s; check the StartTraining "
                "function's log (locally: .local-cloud/logs/)"
            )
        time.sleep(interval)


# ------------------------------------------------------------------ predict


def read_rows(
    text: str, encode: Callable[[list[dict[str, Any]]], list[list[float | None]]] | None
) -> list[list[float | None]]:
    """CSV rows, JSON rows ({"instances": [...]} or a list), or JSON records of named features."""
    stripped = text.lstrip()
    if not stripped:
        raise StackError("the input is empty; give CSV rows or JSON")
    if stripped[0] in "[{":
        try:
            document = json.loads(text)
        except ValueError as error:
            raise StackError(f"the input is not valid JSON: {error}") from None
        items = document.get("instances") if isinstance(document, dict) else document
        if not isinstance(items, list) or not items:
            raise StackError(
                'JSON input must be a list of rows or records, or {"instances": [...]}'
            )
        if all(isinstance(item, dict) for item in items):
            if encode is None:
                raise StackError("named-feature records need the model's schema.json (--schema)")
            return encode(items)
        if all(isinstance(item, list) for item in items):
            return [[_value(v, n) for v in item] for n, item in enumerate(items, start=1)]
        raise StackError("JSON input must be all rows (lists) or all records (objects)")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            rows.append([_value(v.strip() or None, number) for v in line.split(",")])
    return rows


def _value(value: Any, row: int) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StackError(f"row {row}: {value!r} is not a number") from None


def batches(rows: Sequence[Sequence[float | None]]) -> Iterator[Sequence[Sequence[float | None]]]:
    """Consecutive slices of at most BATCH_ROWS rows and about BATCH_BYTES of JSON."""
    start, size = 0, 0
    for index, row in enumerate(rows):
        row_bytes = len(json.dumps(list(row))) + 1
        if index > start and (index - start >= BATCH_ROWS or size + row_bytes > BATCH_BYTES):
            yield rows[start:index]
            start, size = index, 0
        size += row_bytes
    if start < len(rows):
        yield rows[start:]


def predict(stack: Stack, model: str, rows: Sequence[Sequence[float | None]]) -> list[Any]:
    predictions: list[Any] = []
    for batch in batches(rows):
        predictions.extend(stack.api.predict(model, batch)["predictions"])
    return predictions


def read_object(stack: Stack, key: str) -> bytes | None:
    s3 = stack.client("s3")
    try:
        body: bytes = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise StackError(f"cannot read s3://{stack.bucket}/{key}: {_aws_message(error)}") from None
    except BotoCoreError as error:
        raise StackError(f"cannot reach s3://{stack.bucket}: {error}") from None
    return body


# ------------------------------------------------------------------ report


@dataclass(frozen=True)
class RunFiles:
    joined_output: Path
    model_file: Path
    train: Path | None
    validation: Path | None


def download_run(stack: Stack, run: Mapping[str, Any], directory: Path) -> RunFiles:
    """The run's transform output, model and training data, for a report."""
    prefix = f"runs/{run['model']}/{run['run_id']}"
    job = run.get("training_job")
    if not job or not run.get("metrics"):
        raise StackError(
            f"run {run['run_id']} has no scored test set (it is {run.get('stage')}, "
            f"{run.get('status')}): only runs that reached evaluation have a report"
        )
    s3 = stack.client("s3")
    _aws(f"cannot write to {directory}", lambda: directory.mkdir(parents=True, exist_ok=True))

    def fetch(key: str, target: Path) -> Path:
        _aws(
            f"cannot download s3://{stack.bucket}/{key}",
            lambda: s3.download_file(stack.bucket, key, str(target)),
        )
        return target

    def fetch_if_there(key: str, target: Path) -> Path | None:
        try:
            return fetch(key, target)
        except StackError:
            return None

    def fetch_joined(folder: str, target: Path) -> Path:
        """Every `.out` of the transform (one per test file or part), in key order, as one file."""
        keys = [str(item["Key"]) for item in _listed(stack, folder)]
        if not keys:
            raise StackError(f"s3://{stack.bucket}/{folder} holds no batch transform output")
        part = directory / "part.out"
        with target.open("wb") as joined:
            for key in keys:
                with fetch(key, part).open("rb") as data:
                    shutil.copyfileobj(data, joined)
                if part.stat().st_size and not _ends_with_newline(part):
                    joined.write(b"\n")
        part.unlink(missing_ok=True)
        return target

    return RunFiles(
        joined_output=fetch_joined(f"{prefix}/transform/", directory / "test.csv.out"),
        model_file=extract_model(
            fetch(f"{prefix}/training/{job}/output/model.tar.gz", directory / "model.tar.gz"),
            directory,
        ),
        train=fetch_if_there(f"{prefix}/input/train.csv", directory / "train.csv"),
        validation=fetch_if_there(f"{prefix}/input/validation.csv", directory / "validation.csv"),
    )


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as data:
        data.seek(-1, 2)
        return data.read(1) == b"\n"


def extract_model(archive: Path, directory: Path) -> Path:
    """The first regular file of model.tar.gz, as the container picks the model it serves."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and not name.startswith("."):
                    target = directory / "xgboost-model"
                    source = tar.extractfile(member)
                    assert source is not None
                    target.write_bytes(source.read())
                    return target
    except tarfile.TarError as error:
        raise StackError(f"{archive} is not a model.tar.gz: {error}") from None
    raise StackError(f"{archive} holds no model file")


# ------------------------------------------------------------------ delete


def wait_for_rollback(stack: Stack, model: str, version: str, timeout: float = 1800.0) -> None:
    """Until the model's live version is `version`; a rollback that failed is a StackError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = model_item(stack, model) or {}
        if (item.get("live") or {}).get("run_id") == version:
            return
        if (item.get("rollback") or {}).get("to") != version:
            raise StackError(
                f"the rollback of {model} to {version} did not happen; "
                f"`xgbpipe status {model}` and the notification say why"
            )
        time.sleep(1)
    raise StackError(f"{model} is still rolling back to {version}; see `xgbpipe status {model}`")
