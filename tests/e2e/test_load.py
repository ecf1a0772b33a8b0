"""A bounded load test of the local predict URL: concurrent clients on loopback, every request
answered, none lost, every answer the live model's."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

CLIENTS = 16
REQUESTS_PER_CLIENT = 25


def test_concurrent_clients_get_every_prediction(
    stack: Stack, abalone_files: dict[str, str]
) -> None:
    stack.drop("loaded", abalone_files)
    run = stack.wait_for_run("loaded")["latest_run"]
    assert run["status"] == "deployed", run
    rows = [[float(v) for v in line.split(",")[1:]] for line in abalone_files["test.csv"].split()]
    expected = stack.api.predict("loaded", rows[:CLIENTS])["predictions"]
    url = f"{stack.cloud.api_url}/models/loaded/predictions"
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def client(index: int) -> None:
        body = json.dumps({"instances": [rows[index]]}).encode()
        for _ in range(REQUESTS_PER_CLIENT):
            request = urllib.request.Request(
                url,
                data=body,
                headers={"x-api-key": stack.api.api_key, "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    answer = json.loads(response.read())
                outcome = "right" if answer["predictions"] == [expected[index]] else "wrong"
            except urllib.error.HTTPError as error:
                outcome = f"HTTP {error.code}"
            with lock:
                outcomes[outcome] += 1

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))

    # Nothing lost, nothing failed, nothing answered by another row's prediction.
    assert outcomes == {"right": CLIENTS * REQUESTS_PER_CLIENT}
