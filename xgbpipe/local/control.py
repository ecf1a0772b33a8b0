"""Start, find and stop the local cloud's supervisor process (the `xgbpipe local` verbs)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from xgbpipe.local.cloud import Ports
from xgbpipe.local.state import CloudState, StateFiles, process_alive

DEFAULT_STATE_DIR = Path(".local-cloud")
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0


class LocalCloudError(RuntimeError):
    """The local cloud could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class Started:
    state: CloudState
    already_running: bool


def start(
    template: Path,
    state_dir: Path = DEFAULT_STATE_DIR,
    *,
    host: str = "127.0.0.1",
    ports: Ports | None = None,
    parameter_overrides: dict[str, str] | None = None,
) -> Started:
    """Start the supervisor in the background and wait until the cloud answers."""
    files = StateFiles(state_dir)
    if files.running_pid() is not None:
        state = wait_ready(files)
        return Started(state, already_running=True)
    if not template.is_file():
        raise LocalCloudError(f"no template at {template}; run from the project's root directory")
    files.remove_runtime_files()
    files.log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "xgbpipe.local.supervisor",
        "--template",
        str(template.resolve()),
        "--state-dir",
        str(state_dir.resolve()),
        "--host",
        host,
        "--ports",
        json.dumps((ports or Ports()).__dict__),
        "--parameter-overrides",
        json.dumps(parameter_overrides or {}),
    ]
    with files.log.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return Started(wait_ready(files, process), already_running=False)
    except LocalCloudError:
        # A start that failed leaves nothing running behind it.
        stop(state_dir)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        raise


def wait_ready(files: StateFiles, process: subprocess.Popen[bytes] | None = None) -> CloudState:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        state = files.read_state()
        if state is not None:
            return state
        exited = process.poll() is not None if process else files.running_pid() is None
        if exited:
            raise LocalCloudError(
                f"the local cloud did not start; its log ({files.log}) ends with:\n"
                + tail(files.log)
            )
        time.sleep(0.1)
    raise LocalCloudError(f"the local cloud did not answer in time; see {files.log}")


def stop(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    """Stop the supervisor and everything it started; False if it was not running."""
    files = StateFiles(state_dir)
    pid = files.running_pid()
    if pid is None:
        files.remove_runtime_files()
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    # The supervisor leads its own process group: whatever it left behind goes with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    files.remove_runtime_files()
    return True


def running_state(state_dir: Path = DEFAULT_STATE_DIR) -> CloudState:
    files = StateFiles(state_dir)
    state = files.read_state() if files.running_pid() is not None else None
    if state is None:
        raise LocalCloudError("the local cloud is not running; start it with `xgbpipe local up`")
    return state


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
