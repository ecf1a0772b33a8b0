"""Every verb of the client against the local cloud, as a user runs them from a shell."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from tests.e2e.conftest import ABALONE, Stack
from xgbpipe.cli import app
from xgbpipe.prepare import split, to_builtin_format

pytestmark = pytest.mark.e2e


def xgbpipe(stack: Stack, *args: str, stdin: str | None = None) -> Result:
    """Run a verb against the test's local cloud, as `xgbpipe ... --state-dir DIR` would."""
    return CliRunner().invoke(app, [*args, "--state-dir", str(stack.work_dir)], input=stdin)


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert fragment in lines[0]


def test_prepare_upload_watch_predict_report_delete(stack: Stack, tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    prepare = CliRunner().invoke(app, ["prepare", str(ABALONE), str(prepared), "--label", "rings"])
    assert prepare.exit_code == 0, prepare.output

    uploaded = xgbpipe(stack, "upload", str(prepared), "--model", "shells")
    assert uploaded.exit_code == 0, uploaded.output
    match = re.search(r"Run (\w{12})", uploaded.output)
    assert match, uploaded.output
    run_id = match.group(1)

    watched = xgbpipe(stack, "status", "shells", "--watch", "--timeout", "180")
    assert watched.exit_code == 0, watched.output
    assert "deployed" in watched.output
    listed = xgbpipe(stack, "status", "shells")
    assert run_id in listed.output
    assert "deployed" in listed.output
    assert "shells" in xgbpipe(stack, "status").output

    # The prepared test rows are raw rows encoded: the split keeps the raw rows' index.
    raw = pd.read_csv(ABALONE)
    frame, _ = to_builtin_format(raw, "rings")
    test = split(frame)[2].head(20)
    records = raw.drop(columns=["rings"]).loc[test.index].to_json(orient="records")
    rows_csv = test.iloc[:, 1:].to_csv(header=False, index=False)
    named = xgbpipe(stack, "predict", "shells", "-", stdin=records)
    plain = xgbpipe(stack, "predict", "shells", "-", stdin=rows_csv)
    assert named.exit_code == 0, named.output
    assert len(named.output.split()) == 20
    assert named.output == plain.output

    report_dir = tmp_path / "report"
    reported = xgbpipe(stack, "report", run_id, "--out", str(report_dir))
    assert reported.exit_code == 0, reported.output
    png = report_dir / "report.png"
    with Image.open(png) as image:
        assert image.width > 400
        assert image.height > 400
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None
        assert len(colours) > 50  # a drawing, not a blank page
    html = (report_dir / "report.html").read_text()
    embedded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert embedded
    assert base64.b64decode(embedded.group(1)) == png.read_bytes()

    deleted = xgbpipe(stack, "delete", "shells", "--yes")
    assert deleted.exit_code == 0, deleted.output
    endpoints = stack.client("sagemaker").list_endpoints()["Endpoints"]
    assert not [e for e in endpoints if e["EndpointName"].endswith("-shells")]
    after = xgbpipe(stack, "predict", "shells", "-", stdin=rows_csv)
    assert_one_line_error(after, "404")


def test_bad_input_to_each_verb_ends_in_one_line(stack: Stack, tmp_path: Path) -> None:
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "train.csv").write_text("1,2\n")
    assert_one_line_error(
        xgbpipe(stack, "upload", str(incomplete), "--model", "m"), "has no validation.csv, test.csv"
    )
    assert_one_line_error(
        xgbpipe(stack, "upload", str(incomplete), "--model", "Bad Name"), "must be lower-case"
    )
    assert_one_line_error(xgbpipe(stack, "predict", "nobody", "-", stdin="1,2\n"), "404")
    assert_one_line_error(xgbpipe(stack, "predict", "nobody", "-", stdin="[1, "), "not valid JSON")
    assert_one_line_error(
        xgbpipe(stack, "predict", "nobody", "-", stdin="1,abc\n"), "row 1: 'abc' is not a number"
    )
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps({"label": "y", "objective": "reg:squarederror", "features": ["a"]})
    )
    assert_one_line_error(
        xgbpipe(stack, "predict", "nobody", "-", "--schema", str(schema), stdin='[{"b": 1}]'),
        "unknown feature(s) b",
    )
    assert_one_line_error(xgbpipe(stack, "status", "nobody"), "there is no model named nobody")
    assert_one_line_error(xgbpipe(stack, "report", "0123456789ab"), "there is no run")
    assert_one_line_error(xgbpipe(stack, "delete", "nobody", "--yes"), "no model named nobody")


def test_an_unreachable_stack_ends_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_cloud = CliRunner().invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert_one_line_error(no_cloud, "no local cloud running")
    # A deployed stack that cannot be reached: nothing here may ever call real AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    deployed = CliRunner().invoke(
        app, ["status", "--stack", "xgbpipe-prod", "--region", "eu-west-1"]
    )
    assert_one_line_error(deployed, "cannot reach AWS for stack xgbpipe-prod")
