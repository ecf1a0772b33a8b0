"""Names derived from the input: the same files and settings always give the same run and jobs.

That makes every step idempotent: a replayed event finds its job already created.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

DATASETS_PREFIX = "datasets/"
RUNS_PREFIX = "runs/"
DATASET_FILES = ("train.csv", "validation.csv", "test.csv")
HYPERPARAMETERS_FILE = "hyperparameters.json"
# Per-model settings of the stack itself, such as the gate's bars.
PIPELINE_FILE = "pipeline.json"
# Written last into a folder of parts (as Spark and Hadoop do): the folder is complete.
SUCCESS_MARKER = "_SUCCESS"
RUN_ID_LENGTH = 12
MAX_MODEL_NAME_LENGTH = 32
# Lower-case so the model name is valid in S3 keys, SageMaker names and URLs alike.
_MODEL_NAME = re.compile(r"^[a-z0-9](?:-?[a-z0-9])*$")


@dataclass(frozen=True)
class DatasetObject:
    model: str
    file_name: str

    @property
    def is_trigger(self) -> bool:
        """Whether the object can complete a drop: a part alone never does, its marker does."""
        return self.file_name in (
            *DATASET_FILES,
            HYPERPARAMETERS_FILE,
            PIPELINE_FILE,
            SUCCESS_MARKER,
        ) or self.file_name.endswith(f"/{SUCCESS_MARKER}")


@dataclass(frozen=True)
class RunRef:
    model: str
    run_id: str


def parse_dataset_key(key: str) -> DatasetObject | None:
    """`datasets/<model>/<file>` or `datasets/<model>/<channel>/<part>` -> model and the rest;
    anything else (deeper keys, folders) -> None."""
    if not key.startswith(DATASETS_PREFIX):
        return None
    parts = key[len(DATASETS_PREFIX) :].split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return None
    return DatasetObject(model=parts[0], file_name="/".join(parts[1:]))


def model_name_problem(model: str) -> str | None:
    """Why a drop folder's name cannot name a model, or None when it can."""
    if len(model) > MAX_MODEL_NAME_LENGTH:
        return f"model name '{model}' is longer than {MAX_MODEL_NAME_LENGTH} characters"
    if not _MODEL_NAME.match(model):
        return (
            f"model name '{model}' must be lower-case letters, digits and single hyphens "
            "(it names the SageMaker endpoint and the API path)"
        )
    return None


def run_id(etags: Mapping[str, str], fingerprint: str) -> str:
    """Content address of a run: the files' ETags plus the settings that shape its result."""
    digest = hashlib.sha256()
    for name in sorted(etags):
        digest.update(f"{name}={etags[name].strip(chr(34))}\n".encode())
    digest.update(fingerprint.encode())
    return digest.hexdigest()[:RUN_ID_LENGTH]


def job_name(prefix: str, ref: RunRef) -> str:
    """Names the run's training job, model, transform job and endpoint config alike."""
    return f"{prefix}-{ref.model}-{ref.run_id}"


# The batch transform that scores a run's model on the live model's test set.
ON_LIVE_TEST_SET = "-on-live"


def endpoint_name(prefix: str, model: str) -> str:
    return f"{prefix}-{model}"


def parse_job_name(prefix: str, name: str) -> RunRef | None:
    head = f"{prefix}-"
    if not name.startswith(head):
        return None
    model, _, run = name[len(head) :].rpartition("-")
    if not model or len(run) != RUN_ID_LENGTH or model_name_problem(model):
        return None
    return RunRef(model=model, run_id=run)


def parse_endpoint_name(prefix: str, name: str) -> str | None:
    head = f"{prefix}-"
    model = name[len(head) :] if name.startswith(head) else ""
    return model if model and not model_name_problem(model) else None


def run_prefix(ref: RunRef) -> str:
    return f"{RUNS_PREFIX}{ref.model}/{ref.run_id}"
