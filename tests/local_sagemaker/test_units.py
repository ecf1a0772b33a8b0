"""The pure pieces: request validation wording, hyperparameters, filters, container encoding."""

from __future__ import annotations

import math
from typing import Any

import pytest

from xgbpipe.local.sagemaker.bluegreen import traffic_steps
from xgbpipe.local.sagemaker.errors import AlgorithmUserError, ServiceError
from xgbpipe.local.sagemaker.events import event_status
from xgbpipe.local.sagemaker.hyperparameters import validate_hyperparameters
from xgbpipe.local.sagemaker.serving import (
    ContainerError,
    csv_payload_to_matrix,
    encode_predictions,
    resolve_accept,
)
from xgbpipe.local.sagemaker.training import xgboost_params
from xgbpipe.local.sagemaker.transform import FieldFilter, mini_batches
from xgbpipe.local.sagemaker.validation import validate_input


def _validation_message(operation: str, params: dict[str, Any]) -> str:
    with pytest.raises(ServiceError) as raised:
        validate_input("sagemaker", operation, params)
    assert raised.value.code == "ValidationException"
    return raised.value.message


def test_validation_counts_and_lists_every_problem() -> None:
    message = _validation_message(
        "CreateEndpoint", {"EndpointName": "bad name", "EndpointConfigName": "x" * 64}
    )
    # The long name breaks both its length and its pattern.
    assert message.startswith("3 validation errors detected: ")
    assert "Value 'bad name' at 'endpointName' failed to satisfy constraint" in message
    assert (
        f"Value '{'x' * 64}' at 'endpointConfigName' failed to satisfy constraint: Member must "
        "have length less than or equal to 63" in message
    )


def test_validation_paths_into_lists_are_one_based() -> None:
    message = _validation_message(
        "AddTags",
        {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m", "Tags": [{"Key": "k"}]},
    )
    assert message == (
        "1 validation error detected: Value null at 'tags.1.member.value' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_validation_reads_java_unicode_classes() -> None:
    validate_input(
        "sagemaker",
        "AddTags",
        {
            "ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m",
            "Tags": [{"Key": "owner", "Value": "Team Ü 1"}],
        },
    )


def test_wrong_json_type_is_a_serialization_error() -> None:
    with pytest.raises(ServiceError) as raised:
        validate_input("sagemaker", "DescribeEndpoint", {"EndpointName": 7})
    assert raised.value.code == "SerializationException"


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"num_round": "5", "eta": "1.5"}, "Hyperparameter eta: 1.5 is not in [0, 1]"),
        (
            {"num_round": "5", "booster": "forest"},
            "Hyperparameter booster: forest is not in ['gbtree', 'gblinear', 'dart']",
        ),
        (
            {"num_round": "5", "objective": "reg:squarederror", "eval_metric": "auc"},
            "Metric 'auc' can only be applied for classification and ranking problems.",
        ),
        (
            {"num_round": "5", "objective": "binary:logistic", "eval_metric": "f1@0.5"},
            "Metric 'f1@0.5' is not supported.",
        ),
        (
            {"num_round": "5", "subsample": "0"},
            "Hyperparameter subsample: 0.0 is not in (0, 1]",
        ),
    ],
)
def test_hyperparameter_errors_are_worded_like_the_container(
    hyperparameters: dict[str, str], message: str
) -> None:
    with pytest.raises(AlgorithmUserError) as raised:
        validate_hyperparameters(hyperparameters)
    assert str(raised.value).startswith(message)


def test_hyperparameters_are_typed_and_aliases_resolved() -> None:
    config = validate_hyperparameters(
        {
            "num_round": "10",
            "learning_rate": "0.3",
            "objective": "binary:logistic",
            "eval_metric": "auc,error@0.3",
        }
    )
    assert config == {
        "num_round": 10,
        "eta": 0.3,
        "objective": "binary:logistic",
        "eval_metric": ["auc", "error@0.3"],
    }


@pytest.mark.parametrize(
    ("expression", "fields", "selected"),
    [
        ("$", ["1", "2", "3"], ["1", "2", "3"]),
        ("$[1:]", ["1", "2", "3"], ["2", "3"]),
        ("$[0,-1]", ["1", "2", "3", "0.5"], ["1", "0.5"]),
        ("$[:2]", ["1", "2", "3"], ["1", "2"]),
        ("$[2]", ["1", "2", "3"], ["3"]),
    ],
)
def test_field_filters(expression: str, fields: list[str], selected: list[str]) -> None:
    assert FieldFilter(expression).apply(fields) == selected


def test_unsupported_jsonpath_is_refused() -> None:
    with pytest.raises(ValueError, match="is not supported"):
        FieldFilter("$.features[0]")


def test_multi_record_batches_respect_the_payload_limit() -> None:
    records = [b"x" * 40] * 5
    assert [len(batch) for batch in mini_batches(records, "MultiRecord", 100)] == [2, 2, 1]
    assert [len(batch) for batch in mini_batches(records, "SingleRecord", 100)] == [1] * 5


def test_csv_payload_empty_fields_are_missing_values() -> None:
    matrix = csv_payload_to_matrix("1,,3\n4,5,6")
    assert matrix.shape == (2, 3)
    assert math.isnan(matrix[0, 1])


def test_predictions_are_encoded_with_python_str() -> None:
    predictions = [0.43861907720565796, 12.0]
    assert encode_predictions(predictions, "text/csv") == "0.43861907720565796\n12.0\n"
    assert encode_predictions([[0.1, 0.9]], "text/csv") == "0.1,0.9\n"
    assert encode_predictions([[0.1, 0.9]], "text/csv", batch=True) == "[0.1, 0.9]\n"
    assert (
        encode_predictions(predictions, "application/json")
        == '{"predictions": [{"score": 0.43861907720565796}, {"score": 12.0}]}'
    )
    assert encode_predictions(predictions, "application/jsonlines") == "0.43861907720565796\n12.0\n"


def test_accept_defaults_to_csv_and_refuses_unknown_types() -> None:
    assert resolve_accept(None) == "text/csv"
    assert resolve_accept("*/*") == "text/csv"
    assert resolve_accept("application/json; charset=utf-8") == "application/json"
    with pytest.raises(ContainerError) as raised:
        resolve_accept("text/html")
    assert raised.value.status == 406


@pytest.mark.parametrize(
    ("status", "spelled"),
    [("InService", "IN_SERVICE"), ("Creating", "CREATING"), ("OutOfService", "OUT_OF_SERVICE")],
)
def test_endpoint_event_statuses_are_upper_snake_case(status: str, spelled: str) -> None:
    assert event_status(status) == spelled


def test_container_metrics_are_split_from_xgboost_ones() -> None:
    config = validate_hyperparameters(
        {
            "num_round": "5",
            "objective": "binary:logistic",
            "eval_metric": "auc,accuracy",
            "_tuning_objective_metric": "validation:f1",
        }
    )
    params, custom = xgboost_params(config)
    assert params == {"objective": "binary:logistic", "eval_metric": ["auc"]}
    assert custom == ["accuracy", "f1"]


def test_cross_validation_is_refused_clearly() -> None:
    config = validate_hyperparameters({"num_round": "5", "_kfold": "3"})
    with pytest.raises(AlgorithmUserError, match="cross-validation"):
        xgboost_params(config)


@pytest.mark.parametrize(
    ("routing", "instances", "steps"),
    [
        ({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 5}, 2, [(1.0, 5)]),
        (
            {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 3,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
            1,
            [(0.1, 3), (1.0, 3)],
        ),
        (
            {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 0,
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
            },
            4,
            [(0.25, 0), (1.0, 0)],
        ),
        (
            {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 1,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40},
            },
            1,
            [(0.4, 1), (0.8, 1), (1.0, 1)],
        ),
    ],
)
def test_blue_green_traffic_moves_in_the_policy_steps(
    routing: dict[str, Any], instances: int, steps: list[tuple[float, int]]
) -> None:
    shares = traffic_steps({"TrafficRoutingConfiguration": routing}, instances)
    assert [(round(share, 9), wait) for share, wait in shares] == steps
