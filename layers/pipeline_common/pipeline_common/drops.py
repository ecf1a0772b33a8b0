"""What a model's drop folder holds: each channel as one CSV file or as a folder of parts.

`datasets/<model>/train.csv` is the notebook's form. A data set too big for one file comes as
`datasets/<model>/train/part-*.csv` (or `.csv.gz`), the way Spark, Hive or a database export
writes it; the folder is complete when its `_SUCCESS` marker arrives (or one for the whole drop,
`datasets/<model>/_SUCCESS`), so training never starts on half a folder. Names that start with
`_` or `.` are not data, as for the built-in algorithm's container.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline_common.naming import (
    DATASETS_PREFIX,
    HYPERPARAMETERS_FILE,
    PIPELINE_FILE,
    SUCCESS_MARKER,
)
from pipeline_common.storage import StoredObject
from pipeline_common.validation import DropRejected

CHANNELS = ("train", "validation", "test")
PART_SUFFIXES = (".csv", ".csv.gz")
# Parts per channel: each is copied and its head read within one invocation's 15 minutes.
MAX_PARTS = 1000
GZIP_SUFFIX = ".gz"


@dataclass(frozen=True)
class Channel:
    """One channel of a drop: a single file, or the data parts of a folder."""

    name: str
    source: str  # what the user dropped: `train.csv` or `train/`
    parts: tuple[StoredObject, ...]

    @property
    def is_folder(self) -> bool:
        return self.source.endswith("/")

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    def part_name(self, part: StoredObject) -> str:
        """The part as the user named it, for messages: `train/part-00001.csv.gz`."""
        return self.source + _leaf(part) if self.is_folder else self.source

    def snapshot_name(self, part: StoredObject) -> str:
        """The part's name in the run's input, uncompressed: `part-00001.csv`."""
        return _leaf(part).removesuffix(GZIP_SUFFIX)

    def fingerprint(self) -> dict[str, str]:
        """`name=etag` pairs for the run id: every part counts."""
        return {self.part_name(part): part.etag for part in self.parts}

    def record(self) -> dict[str, object]:
        """What the run record keeps of the channel's source (parts are summarised)."""
        if not self.is_folder:
            (part,) = self.parts
            return {
                "key": part.key,
                "etag": part.etag,
                "version_id": part.version_id,
                "size": part.size,
            }
        digest = hashlib.sha256(
            "".join(sorted(f"{n}={e}\n" for n, e in self.fingerprint().items())).encode()
        ).hexdigest()[:32]
        return {
            "key": self.parts[0].key.rpartition("/")[0] + "/",
            "etag": digest,
            "version_id": None,
            "size": self.size,
            "parts": len(self.parts),
            "compressed_parts": sum(p.key.endswith(GZIP_SUFFIX) for p in self.parts),
        }


@dataclass(frozen=True)
class Drop:
    channels: Mapping[str, Channel]
    settings: Mapping[str, StoredObject]  # hyperparameters.json and pipeline.json, when present

    def fingerprint(self) -> dict[str, str]:
        pairs = {name: stored.etag for name, stored in self.settings.items()}
        for channel in self.channels.values():
            pairs.update(channel.fingerprint())
        return pairs


@dataclass(frozen=True)
class Incomplete:
    """A drop still arriving: what it waits for."""

    waiting_for: tuple[str, ...]


def _leaf(part: StoredObject) -> str:
    return part.key.rpartition("/")[2]


def model_prefix(model: str) -> str:
    return f"{DATASETS_PREFIX}{model}/"


def read_drop(model: str, objects: list[StoredObject]) -> Drop | Incomplete:
    """The drop in `objects` (everything under `datasets/<model>/`), or what it still waits for.

    Raises DropRejected for a layout that no upload can complete (both forms of a channel, a
    part that is not CSV, an empty folder marked complete).
    """
    prefix = model_prefix(model)
    # A key ending in `/` is a folder the S3 console made, not a file.
    by_name = {o.key[len(prefix) :]: o for o in objects if not o.key.endswith("/")}
    drop_complete = SUCCESS_MARKER in by_name
    channels: dict[str, Channel] = {}
    waiting: list[str] = []
    for name in CHANNELS:
        single = by_name.get(f"{name}.csv")
        folder = {
            relative[len(name) + 1 :]: stored
            for relative, stored in by_name.items()
            if relative.startswith(f"{name}/")
        }
        if single and folder:
            raise DropRejected(
                f"{name} is dropped twice, as {name}.csv and as the folder {name}/; keep one "
                "(delete the other) and upload the marker again."
            )
        if single:
            channels[name] = Channel(name, f"{name}.csv", (single,))
        elif not folder:
            waiting.append(f"{name}.csv (or {name}/ parts and _SUCCESS)")
        elif SUCCESS_MARKER not in folder and not drop_complete:
            waiting.append(f"{name}/{SUCCESS_MARKER}")
        else:
            channels[name] = Channel(name, f"{name}/", _parts(name, folder))
    if waiting:
        return Incomplete(tuple(waiting))
    settings = {
        name: by_name[name] for name in (HYPERPARAMETERS_FILE, PIPELINE_FILE) if name in by_name
    }
    return Drop(channels, settings)


def _parts(channel: str, folder: Mapping[str, StoredObject]) -> tuple[StoredObject, ...]:
    data = {name: stored for name, stored in folder.items() if not name.startswith(("_", "."))}
    for name in sorted(data):
        if "/" in name or not name.endswith(PART_SUFFIXES):
            raise DropRejected(
                f"{channel}/{name} is not a part this pipeline reads: parts are CSV files "
                f"directly in {channel}/, named *.csv or *.csv.gz (gzip-compressed)."
            )
    if not data:
        raise DropRejected(
            f"{channel}/ is marked complete but holds no part files; upload its "
            f"part-*.csv (or .csv.gz) files before {SUCCESS_MARKER}."
        )
    if len(data) > MAX_PARTS:
        raise DropRejected(
            f"{channel}/ holds {len(data)} parts; one invocation copies and checks at most "
            f"{MAX_PARTS}: write fewer, larger parts (Spark: coalesce or repartition)."
        )
    plain = {name.removesuffix(GZIP_SUFFIX) for name in data}
    if len(plain) < len(data):
        twins = sorted(n for n in data if n.endswith(GZIP_SUFFIX) and n[:-3] in data)
        raise DropRejected(
            f"{channel}/ holds {twins[0][:-3]} both plain and gzip-compressed; keep one."
        )
    return tuple(data[name] for name in sorted(data))
