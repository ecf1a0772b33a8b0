"""The files a running local cloud keeps under its state directory (.local-cloud/)."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CloudState:
    """What a running local cloud tells its clients: where it listens and the stack's outputs."""

    pid: int
    template: str
    parameter_overrides: dict[str, str]
    services_url: str
    sagemaker_url: str
    lambda_url: str
    api_url: str
    environment: dict[str, str]
    failed_events_queue_url: str = ""
    notification_queue_urls: dict[str, str] = field(default_factory=dict)


def process_alive(pid: int) -> bool:
    """Whether pid runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def shell_exports(environment: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in environment.items())


class StateFiles:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.pid = state_dir / "supervisor.pid"
        self.state = state_dir / "state.json"
        self.env_sh = state_dir / "env.sh"
        self.log = state_dir / "logs" / "supervisor.log"

    def write_state(self, state: CloudState) -> None:
        # Written last and atomically: its presence means the cloud is ready.
        partial = self.state.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(state), indent=2))
        partial.replace(self.state)

    def publish(self, state: CloudState) -> None:
        """Tell clients where the cloud of process `state.pid` listens."""
        self.pid.write_text(f"{state.pid}\n")
        self.env_sh.write_text(shell_exports(state.environment))
        self.write_state(state)

    def read_state(self) -> CloudState | None:
        try:
            return CloudState(**json.loads(self.state.read_text()))
        except FileNotFoundError:
            return None

    def running_pid(self) -> int | None:
        """The supervisor's pid if it is alive."""
        try:
            pid = int(self.pid.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def remove_runtime_files(self) -> None:
        for path in (self.state, self.env_sh, self.pid):
            path.unlink(missing_ok=True)
