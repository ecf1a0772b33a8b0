"""Least privilege for every role, and a private, encrypted, versioned, TLS-only data bucket."""

from __future__ import annotations

from typing import Any

from tests.template.stack import ROOT, Template, resources_of_type

EXECUTION_ROLE_ARN = {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
# Neither action supports resource-level permissions; PutMetricData is held to a namespace instead.
ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricStatistics",
}
LAMBDA_MANAGED_POLICIES = [
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allow_statements(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """Every Allow statement of every role, with the role's logical id."""
    return [
        (role_id, statement)
        for role_id, role in resources_of_type(template, "AWS::IAM::Role").items()
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]


def test_no_statement_grants_a_wildcard_action(expanded_template: Template) -> None:
    wildcards = [
        (role, action)
        for role, statement in allow_statements(expanded_template)
        for action in as_list(statement["Action"])
        if "*" in action
    ]

    assert not wildcards


def test_sagemaker_actions_reach_only_the_stacks_prefixed_resources(
    expanded_template: Template,
) -> None:
    statements = [
        (role, statement)
        for role, statement in allow_statements(expanded_template)
        if any(action.startswith("sagemaker:") for action in as_list(statement["Action"]))
    ]

    assert len(statements) >= 4
    for role, statement in statements:
        for resource in as_list(statement["Resource"]):
            arn = resource["Fn::Sub"]
            assert arn.startswith(
                "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
            )
            assert arn.endswith("/${JobPrefix}-*"), f"{role}: {arn}"


def test_pass_role_hands_only_the_execution_role_and_only_to_sagemaker(
    expanded_template: Template,
) -> None:
    statements = [
        (role, statement)
        for role, statement in allow_statements(expanded_template)
        if "iam:PassRole" in as_list(statement["Action"])
    ]

    assert {role for role, _ in statements} == {
        "StartTrainingFunctionRole",
        "RunBatchTransformFunctionRole",
        "ReconcileRunsFunctionRole",
    }
    for _, statement in statements:
        assert as_list(statement["Action"]) == ["iam:PassRole"]
        assert statement["Resource"] == EXECUTION_ROLE_ARN
        assert statement["Condition"] == {
            "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
        }


def test_any_resource_only_for_actions_that_cannot_name_one(expanded_template: Template) -> None:
    unbounded = [
        (role, statement["Action"])
        for role, statement in allow_statements(expanded_template)
        if "*" in as_list(statement["Resource"])
        and not set(as_list(statement["Action"])) <= ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS
    ]

    assert not unbounded


def test_functions_attach_only_the_logging_and_tracing_managed_policies(
    expanded_template: Template,
) -> None:
    functions = resources_of_type(expanded_template, "AWS::Lambda::Function")
    roles = expanded_template["Resources"]

    for function_id in functions:
        role = roles[f"{function_id}Role"]["Properties"]
        assert role["ManagedPolicyArns"] == LAMBDA_MANAGED_POLICIES, function_id


def test_only_sagemaker_may_assume_the_execution_role(template: Template) -> None:
    role = template["Resources"]["SageMakerExecutionRole"]["Properties"]

    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    assert "ManagedPolicyArns" not in role


def test_data_bucket_is_encrypted_versioned_and_private(template: Template) -> None:
    bucket = template["Resources"]["DataBucket"]["Properties"]
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]

    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_data_bucket_refuses_requests_without_tls(template: Template) -> None:
    policy = template["Resources"]["DataBucketPolicy"]["Properties"]

    assert policy["Bucket"] == {"Ref": "DataBucket"}
    assert {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [
            {"Fn::GetAtt": ["DataBucket", "Arn"]},
            {"Fn::Sub": "${DataBucket.Arn}/*"},
        ],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    } in policy["PolicyDocument"]["Statement"]


def test_run_records_and_notifications_are_encrypted_at_rest(template: Template) -> None:
    resources = template["Resources"]

    assert resources["RunsTable"]["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert resources["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"
    assert resources["FailedEventsQueue"]["Properties"]["SqsManagedSseEnabled"] is True


def test_functions_can_neither_delete_nor_expose_nor_expire_data(
    expanded_template: Template,
) -> None:
    destructive = {
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:PutObjectAcl",
        "s3:PutBucketPolicy",
        "s3:PutLifecycleConfiguration",
    }
    granted = {
        (role, action)
        for role, statement in allow_statements(expanded_template)
        for action in as_list(statement["Action"])
        if action in destructive
    }

    assert not granted


def test_functions_write_only_under_runs(expanded_template: Template) -> None:
    writes = [
        (role, resource)
        for role, statement in allow_statements(expanded_template)
        if "s3:PutObject" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]

    assert writes
    for role, resource in writes:
        assert resource["Fn::Sub"].endswith("/runs/*"), role


def test_every_check_the_security_scan_skips_says_why() -> None:
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    skipped = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV_")]

    assert skipped, "make security runs checkov with .checkov.yaml"
    for index in skipped:
        assert lines[index - 1].strip().startswith("#"), f"no reason above {lines[index].strip()}"
