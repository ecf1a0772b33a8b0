"""Pure pieces of the layer: names, configuration, request building, prediction payloads."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pipeline_common.config import ConfigurationError, EndpointKind, Settings
from pipeline_common.endpoint_tracking import normalise_status
from pipeline_common.naming import (
    RunRef,
    job_name,
    model_name_problem,
    parse_dataset_key,
    parse_endpoint_name,
    parse_job_name,
    run_id,
)
from pipeline_common.notifications import subject
from pipeline_common.predictions import (
    PredictionRequestError,
    parse_predictions,
    parse_request,
)
from pipeline_common.runs import from_item, to_item
from pipeline_common.sagemaker_requests import endpoint_config_request

from tests.integration.conftest import ENVIRONMENT


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**ENVIRONMENT, "TOPIC_ARN": "arn:topic", **overrides})


def test_run_ids_depend_on_content_and_settings_only() -> None:
    etags = {"train.csv": '"a"', "validation.csv": "b", "test.csv": "c"}
    same = run_id(dict(reversed(list(etags.items()))), "cfg")
    assert run_id(etags, "cfg") == same
    assert run_id(etags, "other") != same
    assert run_id({**etags, "test.csv": "d"}, "cfg") != same
    assert len(same) == 12


def test_job_names_round_trip_and_fit_sagemaker() -> None:
    ref = RunRef("abalone-v2", "0123456789ab")
    name = job_name("xgbp", ref)
    assert parse_job_name("xgbp", name) == ref
    assert len(job_name("abcdefgh", RunRef("m" * 32, "0" * 12))) <= 63
    assert parse_job_name("xgbp", "other-abalone-0123456789ab") is None
    assert parse_job_name("xgbp", "xgbp-abalone-short") is None
    assert parse_endpoint_name("xgbp", "xgbp-abalone-v2") == "abalone-v2"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("datasets/abalone/train.csv", ("abalone", "train.csv")),
        ("datasets/abalone/", None),
        ("datasets/a/train/part-0.csv.gz", ("a", "train/part-0.csv.gz")),
        ("datasets/a/b/c/train.csv", None),
        ("other/abalone/train.csv", None),
    ],
)
def test_dataset_keys(key: str, expected: tuple[str, str] | None) -> None:
    parsed = parse_dataset_key(key)
    assert (parsed and (parsed.model, parsed.file_name)) == expected


@pytest.mark.parametrize("name", ["Abalone", "a_b", "a--b", "-a", "a" * 33])
def test_bad_model_names_are_explained(name: str) -> None:
    assert model_name_problem(name)


def test_settings_read_every_variable_and_explain_what_is_missing() -> None:
    loaded = settings(GATE_THRESHOLD="2.5", ENDPOINT_KIND="instance")
    assert (loaded.gate_threshold, loaded.endpoint_kind) == (2.5, EndpointKind.INSTANCE)
    assert settings().gate_threshold is None
    with pytest.raises(ConfigurationError, match="RUNS_TABLE"):
        Settings.from_env({k: v for k, v in ENVIRONMENT.items() if k != "RUNS_TABLE"})
    with pytest.raises(ConfigurationError, match="malformed"):
        settings(ENDPOINT_KIND="lambda")


def test_instance_endpoints_get_type_and_count() -> None:
    request = endpoint_config_request(settings(ENDPOINT_KIND="instance"), RunRef("m", "0" * 12))
    (variant,) = request["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large"
    assert variant["InitialInstanceCount"] == 1
    assert "ServerlessConfig" not in variant


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("IN_SERVICE", "IN_SERVICE"),
        ("InService", "IN_SERVICE"),
        ("Failed", "FAILED"),
        ("UpdateRollbackFailed", "UPDATE_ROLLBACK_FAILED"),
    ],
)
def test_endpoint_statuses_compare_in_the_events_spelling(status: str, expected: str) -> None:
    assert normalise_status(status) == expected


def test_dynamodb_values_round_trip() -> None:
    stored = to_item({"rmse": 2.125, "rows": 3, "bad": float("nan"), "list": [0.5]})
    assert stored == {"rmse": Decimal("2.125"), "rows": 3, "list": [Decimal("0.5")]}
    assert from_item(stored) == {"rmse": 2.125, "rows": 3, "list": [0.5]}


def test_prediction_payloads() -> None:
    request = parse_request('{"instances": [[1, null, 2.5]]}', "application/json; charset=utf-8", 3)
    assert request.as_csv() == "1.0,,2.5"
    assert parse_request("1,,2\n\n3,4,5\n", "text/csv", 3).rows == [
        [1.0, None, 2.0],
        [3.0, 4.0, 5.0],
    ]
    with pytest.raises(PredictionRequestError, match="not finite"):
        parse_request('{"instances": [[1, 2, Infinity]]}', None, 3)
    with pytest.raises(PredictionRequestError, match="not a number"):
        parse_request('{"instances": [[1, 2, true]]}', None, 3)
    assert parse_predictions(b"0.5\n1.25\n") == [0.5, 1.25]
    assert parse_predictions(b"0.1,0.2,0.7\n[0.3, 0.3, 0.4]\n") == [
        [0.1, 0.2, 0.7],
        [0.3, 0.3, 0.4],
    ]


def test_csv_that_outgrows_invoke_endpoints_limit_is_refused() -> None:
    # Given rows that are small as JSON integers but grow when written as floats
    body = '{"instances": [' + ", ".join(["[1, 1, 1, 1, 1, 1, 1, 1]"] * 10_000) + "]}"
    many = parse_request(body, None, 8)
    assert len(many.as_csv()) < 6_291_456
    wide = '{"instances":[' + ",".join(["[" + ",".join(["1"] * 400) + "]"] * 4_000) + "]}"
    assert len(wide) < 5_000_000

    with pytest.raises(PredictionRequestError, match="bytes of CSV"):
        parse_request(wide, None, 400)


def test_notification_subjects_are_printable_ascii() -> None:
    assert subject({"model": "modèle\n", "run_id": "r", "status": "invalid"}) == (
        "xgbpipe: mod?le? run r invalid"
    )
