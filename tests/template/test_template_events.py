"""The event sources as CloudFormation receives them, after the SAM transform."""

from __future__ import annotations

from typing import Any

import pytest

from tests.template.stack import Template, resources_of_type

JOB_PREFIX = {"Fn::Sub": "${JobPrefix}-"}
STATE_CHANGE_RULES = {
    "RunBatchTransformFunction": {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Training Job State Change"],
        "detail": {
            "TrainingJobName": [{"prefix": JOB_PREFIX}],
            "TrainingJobStatus": ["Completed", "Failed", "Stopped"],
        },
    },
    "DeployModelFunction": {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Transform Job State Change"],
        "detail": {
            "TransformJobName": [{"prefix": JOB_PREFIX}],
            "TransformJobStatus": ["Completed", "Failed", "Stopped"],
        },
    },
    "TrackEndpointFunction": {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Endpoint State Change"],
        "detail": {"EndpointName": [{"prefix": JOB_PREFIX}]},
    },
}


def rule_targets(template: Template) -> dict[str, list[dict[str, Any]]]:
    """Each function's event patterns, keyed by the function the rule invokes."""
    patterns: dict[str, list[dict[str, Any]]] = {}
    for rule in resources_of_type(template, "AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            function = target["Arn"]["Fn::GetAtt"][0]
            trigger = rule["Properties"].get("EventPattern") or rule["Properties"]
            patterns.setdefault(function, []).append(trigger)
    return patterns


def api_operations(template: Template) -> dict[tuple[str, str], dict[str, Any]]:
    (api,) = resources_of_type(template, "AWS::ApiGateway::RestApi").values()
    return {
        (method.upper(), path): operation
        for path, operations in api["Properties"]["Body"]["paths"].items()
        for method, operation in operations.items()
    }


def test_only_the_sagemaker_state_changes_of_our_jobs_trigger_functions(
    expanded_template: Template,
) -> None:
    expected: dict[str, list[dict[str, Any]]] = {
        function: [pattern] for function, pattern in STATE_CHANGE_RULES.items()
    }
    # Plus the schedules: the reconciler, the safety net for events that never come, and the
    # idle endpoints' check, on only when IdleEndpointHours is set.
    schedules = {
        "ReconcileRunsFunction": {"ScheduleExpression": "rate(15 minutes)"},
        "RetireIdleEndpointsFunction": {
            "ScheduleExpression": "rate(1 hour)",
            "State": {"Fn::If": ["RetiresIdleEndpoints", "ENABLED", "DISABLED"]},
        },
    }
    targets = rule_targets(expanded_template)
    for function, schedule in schedules.items():
        expected[function] = [schedule]
        targets[function] = [
            {k: v for k, v in rule.items() if k in schedule} for rule in targets.get(function, [])
        ]
    assert targets == expected


@pytest.mark.parametrize("function", sorted(STATE_CHANGE_RULES))
def test_eventbridge_may_invoke_each_rule_function(
    expanded_template: Template, function: str
) -> None:
    permissions = [
        permission["Properties"]
        for permission in resources_of_type(expanded_template, "AWS::Lambda::Permission").values()
        if permission["Properties"]["FunctionName"] == {"Ref": function}
    ]

    assert [permission["Principal"] for permission in permissions] == ["events.amazonaws.com"]


def test_objects_created_under_datasets_start_training(expanded_template: Template) -> None:
    bucket = expanded_template["Resources"]["DataBucket"]["Properties"]

    assert bucket["NotificationConfiguration"] == {
        "LambdaConfigurations": [
            {
                "Event": "s3:ObjectCreated:*",
                "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "datasets/"}]}},
                "Function": {"Fn::GetAtt": ["StartTrainingFunction", "Arn"]},
            }
        ]
    }


def test_bucket_name_is_built_the_way_functions_are_told_it(expanded_template: Template) -> None:
    # A !Ref to the bucket in the functions would close a cycle through the S3 notification.
    bucket_name = expanded_template["Resources"]["DataBucket"]["Properties"]["BucketName"]
    functions = resources_of_type(expanded_template, "AWS::Lambda::Function").values()

    told = [
        function["Properties"]["Environment"]["Variables"]["DATA_BUCKET"] for function in functions
    ]
    assert told == [bucket_name] * len(told)
    assert bucket_name == {"Fn::Sub": "${AWS::StackName}-data-${AWS::AccountId}-${AWS::Region}"}


def test_api_routes_reach_their_functions_only_with_an_api_key(
    expanded_template: Template,
) -> None:
    operations = api_operations(expanded_template)

    functions = {
        ("POST", "/models/{model}/predictions"): "PredictFunction",
        ("GET", "/models/{model}"): "PredictFunction",
        ("GET", "/models/{model}/versions"): "ManageModelsFunction",
        ("POST", "/models/{model}/rollback"): "ManageModelsFunction",
        ("DELETE", "/models/{model}"): "ManageModelsFunction",
    }
    assert set(operations) == set(functions)
    for route, operation in operations.items():
        integration = operation["x-amazon-apigateway-integration"]
        assert operation["security"] == [{"api_key": []}]
        assert integration["type"] == "aws_proxy"
        assert f"{functions[route]}.Arn" in integration["uri"]["Fn::Sub"]


def test_api_key_is_in_a_throttled_usage_plan(expanded_template: Template) -> None:
    (api,) = resources_of_type(expanded_template, "AWS::ApiGateway::RestApi").values()
    (plan,) = resources_of_type(expanded_template, "AWS::ApiGateway::UsagePlan").values()
    (key,) = resources_of_type(expanded_template, "AWS::ApiGateway::ApiKey").values()
    (plan_key,) = resources_of_type(expanded_template, "AWS::ApiGateway::UsagePlanKey").values()

    assert api["Properties"]["Body"]["securityDefinitions"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    assert plan["Properties"]["ApiStages"][0]["ApiId"] == {"Ref": "PredictionApi"}
    assert plan["Properties"]["Throttle"]["RateLimit"] > 0
    assert key["Properties"]["Enabled"] is True
    assert plan_key["Properties"]["KeyType"] == "API_KEY"
