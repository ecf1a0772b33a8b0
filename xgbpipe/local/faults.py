"""Faults injected into the local cloud on purpose, to prove the stack survives them.

Armed faults live in one JSON file of the cloud's state directory, so the test or user arming
them, the local SageMaker and every function process see the same list. Each fault fires a set
number of times; a firing is claimed under a file lock, so however many processes race, it fires
exactly that often.

- Call faults act in a function's process just before one of its AWS calls, named like
  `sagemaker.CreateTrainingJob` (botocore's service id and operation): `error` answers with an AWS
  error, which botocore's retries see as if the service had sent it; `crash` kills the process
  mid-invocation, as an out-of-memory kill would, so Lambda retries the event; `pause` holds the
  call until the fault is released, so a test can make a race happen on cue.
- Job faults make the local SageMaker's next `TrainingJob`, `TransformJob` or `Endpoint`
  deployment fail with the fault's message, as a container error would; an `Invocation` fault
  makes the next invocation a new fleet answers during a blue/green update fail (a model error).

Standard library only: function processes import it beside their own code.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

# The variable that tells a function process where the cloud's fault file is.
FAULTS_VARIABLE = "XGBPIPE_LOCAL_FAULTS"
FAULTS_FILE = "faults.json"
SAGEMAKER_TARGETS = ("TrainingJob", "TransformJob", "Endpoint", "Invocation")
# A paused call gives up waiting after this long, so a forgotten release cannot hang a cloud.
MAX_PAUSE_SECONDS = 120.0
# The exit status of a crashed function process (what Lambda reports for a runtime exit).
CRASH_EXIT_STATUS = 70

Effect = Literal["error", "crash", "pause", "fail"]


class FaultError(ValueError):
    """A fault that cannot be armed as described."""


@dataclass
class Fault:
    """One armed fault: what it matches, what it does, and how many more times it fires."""

    target: str
    effect: Effect
    times: int = 1
    function: str | None = None
    code: str = "ThrottlingException"
    message: str = "Rate exceeded"
    status: int = 400
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    fired: int = 0
    paused: bool = False
    released: bool = False

    def __post_init__(self) -> None:
        if self.effect == "fail":
            if self.target not in SAGEMAKER_TARGETS:
                raise FaultError(f"a fail fault targets one of {', '.join(SAGEMAKER_TARGETS)}")
        elif self.effect in ("error", "crash", "pause"):
            service, _, operation = self.target.partition(".")
            if not service or not operation:
                raise FaultError(
                    f"a call fault targets service.Operation, such as "
                    f"sagemaker.CreateTrainingJob, not {self.target!r}"
                )
        else:
            raise FaultError(f"unknown effect {self.effect!r}: error, crash, pause or fail")
        if self.times < 1:
            raise FaultError("a fault fires at least once")

    @property
    def is_call(self) -> bool:
        return self.effect != "fail"

    def matches(self, target: str, function: str | None) -> bool:
        return (
            self.fired < self.times
            and self.target == target
            and (self.function is None or self.function == function)
        )


class FaultFile:
    """The armed faults of one local cloud, shared by every process through one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_suffix(".lock")

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> FaultFile:
        return cls(state_dir / FAULTS_FILE)

    def arm(self, fault: Fault) -> Fault:
        with self._edit() as faults:
            faults.append(fault)
        return fault

    def armed(self) -> list[Fault]:
        return self._read()

    def get(self, fault_id: str) -> Fault:
        for fault in self.armed():
            if fault.id == fault_id:
                return fault
        raise FaultError(f"no fault {fault_id}")

    def clear(self) -> None:
        with self._edit() as faults:
            faults.clear()
        # No file is the common case, which claim() answers with one stat.
        self.path.unlink(missing_ok=True)

    def release(self, fault_id: str) -> None:
        with self._edit() as faults:
            for fault in faults:
                if fault.id == fault_id:
                    fault.released = True

    def claim(self, target: str, function: str | None = None) -> Fault | None:
        """The fault that fires now for this target, counted as fired; None when none does.

        Every AWS call of every local function asks, so the answer for no armed fault takes no
        lock and writes nothing (the file is replaced whole, never seen half-written).
        """
        if not any(fault.matches(target, function) for fault in self._read()):
            return None
        with self._edit() as faults:
            for fault in faults:
                if fault.matches(target, function):
                    fault.fired += 1
                    fault.paused = fault.effect == "pause"
                    return Fault(**asdict(fault))
        return None

    def wait_until_paused(self, fault_id: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.get(fault_id).paused:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fault {fault_id} did not pause a call within {timeout}s")
            time.sleep(0.05)

    def _hold(self, fault_id: str) -> None:
        """Block the paused call until the fault is released (or MAX_PAUSE_SECONDS pass)."""
        deadline = time.monotonic() + MAX_PAUSE_SECONDS
        while not self.get(fault_id).released and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._edit() as faults:
            for fault in faults:
                if fault.id == fault_id:
                    fault.paused = False

    def _read(self) -> list[Fault]:
        try:
            return [Fault(**entry) for entry in json.loads(self.path.read_text())]
        except FileNotFoundError:
            return []

    @contextmanager
    def _edit(self) -> Iterator[list[Fault]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                stored = json.loads(self.path.read_text()) if self.path.exists() else []
                faults = [Fault(**entry) for entry in stored]
                yield faults
                temporary = self.path.with_suffix(".tmp")
                temporary.write_text(json.dumps([asdict(fault) for fault in faults], indent=1))
                temporary.replace(self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class _Body:
    """The raw stream botocore reads an HTTP response's body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._data


def _cbor_text_map(entries: dict[str, str]) -> bytes:
    """A CBOR map of short text strings: all an error body of the rpc-v2-cbor protocol needs."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([major << 5 | length])
        return bytes([major << 5 | 25]) + length.to_bytes(2, "big")

    encoded = head(5, len(entries))
    for key, value in entries.items():
        for text in (key, value):
            data = text.encode()
            encoded += head(3, len(data)) + data
    return encoded


def _error_response(fault: Fault, protocol: str, url: str) -> Any:
    """The error as the service's protocol would send it, for botocore to parse."""
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    headers = HTTPHeaders()
    code, message = fault.code, fault.message
    if protocol == "rest-xml":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        headers["Content-Type"] = "application/xml"
    elif protocol == "query":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        ).encode()
        headers["Content-Type"] = "text/xml"
    elif protocol == "smithy-rpc-v2-cbor":
        body = _cbor_text_map({"__type": code, "message": message})
        headers["Content-Type"] = "application/cbor"
        headers["smithy-protocol"] = "rpc-v2-cbor"
    else:  # json and rest-json
        body = json.dumps({"__type": code, "message": message}).encode()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        headers["x-amzn-ErrorType"] = code
    return AWSResponse(url, fault.status, headers, _Body(body))


def call_fault_hook(faults: FaultFile, function: str | None) -> dict[str, Callable[..., Any]]:
    """botocore handlers that apply the call faults armed for this function: `before-call`
    notes the operation's protocol, `before-send` answers in its place."""
    calling = threading.local()

    def before_call(model: Any, **_kwargs: Any) -> None:
        service = model.service_model
        calling.protocol = getattr(service, "resolved_protocol", None) or service.protocol

    def before_send(request: Any, event_name: str, **_kwargs: Any) -> Any:
        _, service, operation = event_name.split(".", 2)
        target = f"{service}.{operation}"
        fault = faults.claim(target, function)
        if fault is None:
            return None
        if fault.effect == "crash":
            print(f"local fault {fault.id}: crashing before {target}", file=sys.stderr, flush=True)
            os._exit(CRASH_EXIT_STATUS)
        if fault.effect == "pause":
            faults._hold(fault.id)
            return None
        return _error_response(fault, getattr(calling, "protocol", "json"), request.url)

    return {"before-call": before_call, "before-send": before_send}


def install_call_faults(function: str | None) -> None:
    """Apply the cloud's call faults to every boto3 client this process makes from now on."""
    path = os.environ.get(FAULTS_VARIABLE)
    if not path:
        return
    import boto3

    # Clients copy their session's handlers when made, so register before the first one.
    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    for event, handler in call_fault_hook(FaultFile(Path(path)), function).items():
        session.events.register(event, handler)
