"""The fault file: what a fault may target, and that it fires exactly as often as armed."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from xgbpipe.local.faults import Fault, FaultError, FaultFile


@pytest.mark.parametrize(
    ("target", "effect", "times", "message"),
    [
        ("CreateTrainingJob", "error", 1, "service.Operation"),
        ("sagemaker.CreateTrainingJob", "fail", 1, "TrainingJob, TransformJob, Endpoint"),
        ("TrainingJob", "explode", 1, "unknown effect"),
        ("TrainingJob", "fail", 0, "at least once"),
    ],
)
def test_a_fault_that_cannot_fire_is_refused(
    target: str, effect: str, times: int, message: str
) -> None:
    with pytest.raises(FaultError, match=message):
        Fault(target, effect, times=times)  # type: ignore[arg-type]


def test_a_fault_fires_as_often_as_armed_for_its_function_only(tmp_path: Path) -> None:
    faults = FaultFile.in_state_dir(tmp_path)
    fault = faults.arm(Fault("s3.GetObject", "error", times=2, function="predict"))

    claims = [faults.claim("s3.GetObject", function) for function in ("train", "predict") * 2]
    claims.append(faults.claim("s3.GetObject", "predict"))

    assert [c.id if c else None for c in claims] == [None, fault.id, None, fault.id, None]
    assert faults.get(fault.id).fired == 2


def _claim(path: Path) -> bool:
    return FaultFile(path).claim("TrainingJob") is not None


def test_processes_racing_for_a_fault_fire_it_exactly_as_often_as_armed(tmp_path: Path) -> None:
    faults = FaultFile.in_state_dir(tmp_path)
    faults.arm(Fault("TrainingJob", "fail", times=5))

    with ProcessPoolExecutor(4) as pool:
        fired = list(pool.map(_claim, [faults.path] * 40))

    assert sum(fired) == 5
