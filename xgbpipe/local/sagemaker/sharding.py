"""Which S3 objects each instance of a multi-instance job receives.

SageMaker names training hosts `algo-1` ... `algo-N` and gives each channel's objects to them by
the channel's `S3DataDistributionType`: `FullyReplicated` copies every object to every host,
`ShardedByS3Key` gives each host about 1/N of the objects. AWS does not say which object goes
where, only that each goes to one host; the local SageMaker deals sorted keys out round-robin
(key i to host i % N), so tests can tell in advance which host gets what.
"""

from __future__ import annotations

FULLY_REPLICATED = "FullyReplicated"
SHARDED = "ShardedByS3Key"


def host_names(count: int) -> list[str]:
    return [f"algo-{number}" for number in range(1, count + 1)]


def is_data_file(key: str) -> bool:
    """The container's `_is_data_file` name rule: names starting with `.` or `_` (a Spark
    `_SUCCESS` marker, `.crc` files) are not validated as data."""
    name = key.rsplit("/", 1)[-1]
    return not name.startswith((".", "_"))


def round_robin(keys: list[str], count: int) -> list[list[str]]:
    """Sorted keys dealt out to `count` takers: key i goes to taker i % count."""
    ordered = sorted(keys)
    return [ordered[taker::count] for taker in range(count)]


def distribute(keys: list[str], count: int, distribution: str | None) -> list[list[str]]:
    """Each host's keys, by position in `host_names(count)`.

    Sharded data files and the other objects (markers) are dealt out separately, so that a
    `_SUCCESS` marker beside part files does not shift which host gets which part.
    """
    if distribution != SHARDED:
        return [sorted(keys) for _ in range(count)]
    data = round_robin([key for key in keys if is_data_file(key)], count)
    markers = round_robin([key for key in keys if not is_data_file(key)], count)
    return [sorted(ours + theirs) for ours, theirs in zip(data, markers, strict=True)]
