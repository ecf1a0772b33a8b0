"""`xgbpipe local` up, status, env, invoke and down, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.local_cloud.conftest import ROOT, StackFactory
from xgbpipe.local.state import process_alive


def xgbpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "xgbpipe.cli", *args],
        check=False,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_up_status_env_invoke_down(make_stack: StackFactory, tmp_path: Path) -> None:
    template = make_stack({})
    state = ["--state-dir", str(tmp_path / "lc")]
    up = xgbpipe(
        "local", "up", "--ports", "auto", "--template", str(template), *state, cwd=tmp_path
    )
    assert up.returncode == 0, up.stderr
    assert "The local cloud is up" in up.stdout
    pid = int((tmp_path / "lc" / "supervisor.pid").read_text())
    try:
        again = xgbpipe("local", "up", "--template", str(template), *state, cwd=tmp_path)
        assert "already running" in again.stdout
        assert xgbpipe("local", "status", *state, cwd=tmp_path).returncode == 0

        exports = xgbpipe("local", "env", *state, cwd=tmp_path).stdout
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "XGBPIPE_API_KEY"):
            assert f"export {name}=" in exports
        assert exports == (tmp_path / "lc" / "env.sh").read_text()

        event = tmp_path / "event.json"
        event.write_text(json.dumps({"path": "/models/abalone"}))
        invoked = xgbpipe("local", "invoke", "predict", "--event", str(event), *state, cwd=tmp_path)
        assert invoked.returncode == 0, invoked.stderr
        assert json.loads(json.loads(invoked.stdout)["body"]) == {"seen": "/models/abalone"}
    finally:
        down = xgbpipe("local", "down", *state, cwd=tmp_path)
    assert "stopped" in down.stdout
    assert not process_alive(pid)
    assert not (tmp_path / "lc" / "supervisor.pid").exists()
    assert not (tmp_path / "lc" / "state.json").exists()
    status = xgbpipe("local", "status", *state, cwd=tmp_path)
    assert status.returncode == 1
    assert "not running" in status.stdout
