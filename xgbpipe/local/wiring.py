"""The local stack's wiring, read from template.yaml itself.

The SAM template is expanded offline by aws-sam-translator (the library behind `sam build` and
CloudFormation's SAM transform), so event sources come out exactly as AWS creates them: rules with
their patterns, the bucket's NotificationConfiguration, the API's routes. The intrinsic functions
are then resolved for one local stack, giving every resource the physical name it has locally.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.session import Session
from cfnlint.decode.cfn_yaml import load as load_cfn_yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.transform import undo_mark_unicode_str_in_template
from samtranslator.translator.translator import Translator

STACK_NAME = "xgbpipe-local"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

# CodeUri/ContentUri become s3://<this bucket>/<directory relative to the template>, so the
# translated template still says which directory holds each function's and layer's code.
_CODE_PLACEHOLDER_BUCKET = "xgbpipe-local-code"
_NO_VALUE = object()


class WiringError(ValueError):
    """The template cannot be wired locally (an unsupported construct or a broken reference)."""


@dataclass(frozen=True)
class BucketNotification:
    function: str
    events: tuple[str, ...]
    key_filters: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Bucket:
    logical_id: str
    name: str
    notifications: tuple[BucketNotification, ...]


@dataclass(frozen=True)
class Table:
    logical_id: str
    name: str
    key_schema: tuple[dict[str, str], ...]
    attribute_definitions: tuple[dict[str, str], ...]
    global_secondary_indexes: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Topic:
    logical_id: str
    name: str
    arn: str


@dataclass(frozen=True)
class Queue:
    logical_id: str
    name: str
    arn: str


@dataclass(frozen=True)
class EventRule:
    """A rule that matches events (event_pattern) or fires on a schedule (schedule_expression)."""

    logical_id: str
    name: str
    event_pattern: dict[str, Any] | None
    function: str
    schedule_expression: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int
    memory_mb: int
    layer_dirs: tuple[Path, ...]
    max_retry_attempts: int = 2
    on_failure_queue: str | None = None

    @property
    def dir_name(self) -> str:
        return self.code_dir.name


@dataclass(frozen=True)
class ApiRoute:
    api: str
    method: str
    path: str
    function: str
    api_key_required: bool
    stage: str


@dataclass(frozen=True)
class Wiring:
    stack_name: str
    region: str
    account_id: str
    parameters: dict[str, str]
    buckets: tuple[Bucket, ...]
    tables: tuple[Table, ...]
    topics: tuple[Topic, ...]
    queues: tuple[Queue, ...]
    rules: tuple[EventRule, ...]
    functions: tuple[Function, ...]
    routes: tuple[ApiRoute, ...]
    outputs: dict[str, str] = field(default_factory=dict)

    def function(self, name: str) -> Function:
        """A function by logical id, physical name or code directory name (functions/<name>)."""
        for function in self.functions:
            if name in (function.logical_id, function.name, function.dir_name):
                return function
        known = ", ".join(f"{f.logical_id} ({f.dir_name})" for f in self.functions)
        raise WiringError(f"no function {name!r} in the template; known: {known}")

    def queue(self, logical_id: str) -> Queue:
        return next(q for q in self.queues if q.logical_id == logical_id)


def load_wiring(
    template_path: Path,
    parameter_overrides: Mapping[str, str] | None = None,
    *,
    stack_name: str = STACK_NAME,
    account_id: str = ACCOUNT_ID,
    region: str = REGION,
    queue_url_base: str | None = None,
) -> Wiring:
    """Expand and resolve template.yaml for the local stack.

    queue_url_base is where SQS queue URLs live (Ref of a queue); moto serves them under its own
    endpoint, AWS under https://sqs.<region>.amazonaws.com.
    """
    template_path = template_path.resolve()
    expanded = expand_template(template_path, region)
    parameters = _parameter_values(expanded, parameter_overrides or {})
    resolver = _Resolver(
        expanded,
        parameters,
        stack_name=stack_name,
        account_id=account_id,
        region=region,
        queue_url_base=queue_url_base or f"https://sqs.{region}.amazonaws.com",
    )
    return _describe(expanded, resolver, template_path.parent)


def expand_template(template_path: Path, region: str = REGION) -> dict[str, Any]:
    """The template as plain CloudFormation, the way the SAM transform expands it."""
    template = json.loads(json.dumps(load_cfn_yaml(str(template_path))))
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        for uri_key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(uri_key), str):
                properties[uri_key] = f"s3://{_CODE_PLACEHOLDER_BUCKET}/{properties[uri_key]}"
    # samtranslator's transform() with the region given by a session rather than the process
    # environment; local functions run without IAM, so no managed policies are looked up.
    translator = Translator(None, Parser(), boto_session=Session(region_name=region))
    expanded = translator.translate(template, parameter_values={}, get_managed_policy_map=dict)
    return dict(undo_mark_unicode_str_in_template(expanded))


def _parameter_values(template: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    declared = template.get("Parameters", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise WiringError(
            f"unknown parameter(s) {', '.join(unknown)}; the template declares "
            f"{', '.join(sorted(declared))}"
        )
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            raise WiringError(f"parameter {name} has no default; pass it as an override")
        allowed = spec.get("AllowedValues")
        if allowed is not None and values[name] not in [str(v) for v in allowed]:
            raise WiringError(f"parameter {name}={values[name]!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, values[name]):
            raise WiringError(f"parameter {name}={values[name]!r} does not match {pattern}")
    return values


class _Resolver:
    """Resolves Ref, GetAtt, Sub, FindInMap, If, Join, Select and conditions for one stack."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        *,
        stack_name: str,
        account_id: str,
        region: str,
        queue_url_base: str,
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.stack_name = stack_name
        self.account_id = account_id
        self.region = region
        self.queue_url_base = queue_url_base.rstrip("/")
        self.refs: dict[str, str] = {
            **parameters,
            "AWS::StackName": stack_name,
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local"
            ),
        }
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = self.template.get("Conditions", {}).get(name)
            if spec is None:
                raise WiringError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    def included(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _intrinsic(self, name: str, argument: Any) -> Any:
        match name:
            case "Ref":
                return self.ref(argument)
            case "Fn::GetAtt":
                logical_id, attribute = (
                    argument.split(".", 1) if isinstance(argument, str) else argument
                )
                return self.get_att(logical_id, self.resolve(attribute))
            case "Fn::Sub":
                template, variables = (argument, {}) if isinstance(argument, str) else argument
                return self._sub(template, self.resolve(variables))
            case "Fn::FindInMap":
                map_name, top, second = self.resolve(argument)
                return self.template["Mappings"][map_name][top][second]
            case "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            case "Fn::Equals":
                left, right = self.resolve(argument)
                return str(left) == str(right)
            case "Fn::Not":
                return not self.resolve(argument)[0]
            case "Fn::And":
                return all(self.resolve(argument))
            case "Fn::Or":
                return any(self.resolve(argument))
            case "Condition":
                return self.condition(argument)
            case "Fn::Join":
                delimiter, items = argument
                return str(delimiter).join(str(item) for item in self.resolve(items))
            case "Fn::Select":
                index, items = self.resolve(argument)
                return items[int(index)]
            case "Fn::Split":
                delimiter, text = self.resolve(argument)
                return str(text).split(delimiter)
        raise WiringError(f"intrinsic function {name} is not supported locally")

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.refs:
            return self.refs[name]
        resource = self.resources.get(name)
        if resource is None:
            raise WiringError(f"Ref to unknown parameter or resource {name}")
        properties = resource.get("Properties", {})
        match resource["Type"]:
            case "AWS::SNS::Topic":
                return self.get_att(name, "TopicArn")
            case "AWS::SQS::Queue":
                return f"{self.queue_url_base}/{self.account_id}/{self.get_att(name, 'QueueName')}"
            case "AWS::Lambda::LayerVersion":
                layer = self.resolve(properties.get("LayerName", name))
                return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{layer}:1"
            case "AWS::ApiGateway::RestApi" | "AWS::ApiGateway::ApiKey":
                return hashlib.sha256(f"{self.stack_name}/{name}".encode()).hexdigest()[:10]
            case "AWS::ApiGateway::Stage":
                return str(self.resolve(properties["StageName"]))
        return self.physical_name(name)

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        name_property = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::IAM::Role": "RoleName",
            "AWS::Events::Rule": "Name",
        }.get(resource["Type"])
        explicit = resource.get("Properties", {}).get(name_property) if name_property else None
        if explicit is not None:
            return str(self.resolve(explicit))
        # CloudFormation appends a random suffix; locally the stack is unique, so the name is too.
        generated = f"{self.stack_name}-{logical_id}"
        return generated.lower() if resource["Type"] == "AWS::S3::Bucket" else generated

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise WiringError(f"GetAtt of unknown resource {logical_id}")
        name = self.physical_name(logical_id)
        arn_prefix = f"arn:aws:{{}}:{self.region}:{self.account_id}"
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::Table": f"{arn_prefix.format('dynamodb')}:table/{name}",
            "AWS::SNS::Topic": f"{arn_prefix.format('sns')}:{name}",
            "AWS::SQS::Queue": f"{arn_prefix.format('sqs')}:{name}",
            "AWS::Lambda::Function": f"{arn_prefix.format('lambda')}:function:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{self.account_id}:role/{name}",
            "AWS::Events::Rule": f"{arn_prefix.format('events')}:rule/{name}",
        }
        match attribute:
            case "Arn" | "TopicArn" if resource["Type"] in arns:
                return arns[resource["Type"]]
            case "TopicName" | "QueueName" | "RoleId":
                return name
            case "QueueUrl":
                return str(self.ref(logical_id))
            case "RootResourceId":
                return "root"
        raise WiringError(f"GetAtt {logical_id}.{attribute} is not supported locally")

    def _sub(self, template: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if expression in self.refs or expression in self.resources:
                return str(self.ref(expression))
            if "." in expression:
                logical_id, attribute = expression.split(".", 1)
                return self.get_att(logical_id, attribute)
            raise WiringError(f"Fn::Sub variable ${{{expression}}} is not defined")

        return re.sub(r"\$\{([^}]+)\}", replace, template)


def _describe(template: dict[str, Any], resolver: _Resolver, base_dir: Path) -> Wiring:
    resources = {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resolver.included(logical_id)
    }

    def of_type(resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resolver.resolve(copy.deepcopy(resource.get("Properties", {})))
            for logical_id, resource in resources.items()
            if resource["Type"] == resource_type
        }

    function_ids = {
        resolver.get_att(logical_id, "Arn"): logical_id
        for logical_id in of_type("AWS::Lambda::Function")
    }

    def function_of(arn: str) -> str:
        # API integrations and event invoke configs may name a version or alias after the ARN.
        for function_arn, logical_id in function_ids.items():
            if arn == function_arn or arn.startswith(f"{function_arn}:") or function_arn in arn:
                return logical_id
        raise WiringError(f"{arn} is not a function of this template")

    return Wiring(
        stack_name=resolver.stack_name,
        region=resolver.region,
        account_id=resolver.account_id,
        parameters={k: v for k, v in resolver.refs.items() if not k.startswith("AWS::")},
        buckets=_buckets(of_type("AWS::S3::Bucket"), resolver, function_of),
        tables=tuple(
            Table(
                logical_id=logical_id,
                name=resolver.physical_name(logical_id),
                key_schema=tuple(properties["KeySchema"]),
                attribute_definitions=tuple(properties.get("AttributeDefinitions", [])),
                global_secondary_indexes=tuple(properties.get("GlobalSecondaryIndexes", [])),
            )
            for logical_id, properties in of_type("AWS::DynamoDB::Table").items()
        ),
        topics=tuple(
            Topic(logical_id, resolver.physical_name(logical_id), resolver.ref(logical_id))
            for logical_id in of_type("AWS::SNS::Topic")
        ),
        queues=tuple(
            Queue(
                logical_id,
                resolver.physical_name(logical_id),
                resolver.get_att(logical_id, "Arn"),
            )
            for logical_id in of_type("AWS::SQS::Queue")
        ),
        rules=tuple(
            EventRule(
                logical_id=logical_id,
                name=resolver.physical_name(logical_id),
                event_pattern=properties.get("EventPattern"),
                function=function_of(target["Arn"]),
                schedule_expression=properties.get("ScheduleExpression"),
                enabled=properties.get("State", "ENABLED") == "ENABLED",
            )
            for logical_id, properties in of_type("AWS::Events::Rule").items()
            for target in properties.get("Targets", [])
        ),
        functions=_functions(resources, of_type, resolver, base_dir),
        routes=_routes(of_type, resolver, function_of),
        outputs={
            name: str(resolver.resolve(output["Value"]))
            for name, output in template.get("Outputs", {}).items()
            if output.get("Condition") is None or resolver.condition(output["Condition"])
        },
    )


def _buckets(
    buckets: dict[str, dict[str, Any]], resolver: _Resolver, function_of: Any
) -> tuple[Bucket, ...]:
    described = []
    for logical_id, properties in buckets.items():
        lambda_configurations = properties.get("NotificationConfiguration", {}).get(
            "LambdaConfigurations", []
        )
        notifications = tuple(
            BucketNotification(
                function=function_of(configuration["Function"]),
                events=(configuration["Event"],),
                key_filters=tuple(
                    (rule["Name"].lower(), rule["Value"])
                    for rule in configuration.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                ),
            )
            for configuration in lambda_configurations
        )
        described.append(Bucket(logical_id, resolver.physical_name(logical_id), notifications))
    return tuple(described)


def _functions(
    resources: dict[str, Any], of_type: Any, resolver: _Resolver, base_dir: Path
) -> tuple[Function, ...]:
    layers = {
        resolver.ref(logical_id): _code_dir(properties["Content"], base_dir)
        for logical_id, properties in of_type("AWS::Lambda::LayerVersion").items()
    }
    invoke_configs = {
        properties["FunctionName"]: properties
        for properties in of_type("AWS::Lambda::EventInvokeConfig").values()
    }
    queue_ids = {
        resolver.get_att(logical_id, "Arn"): logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::SQS::Queue"
    }
    functions = []
    for logical_id, properties in of_type("AWS::Lambda::Function").items():
        name = resolver.physical_name(logical_id)
        invoke_config = invoke_configs.get(name, {})
        on_failure = (
            invoke_config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        )
        if on_failure is not None and on_failure not in queue_ids:
            raise WiringError(f"{logical_id}: only SQS OnFailure destinations run locally")
        functions.append(
            Function(
                logical_id=logical_id,
                name=name,
                arn=resolver.get_att(logical_id, "Arn"),
                code_dir=_code_dir(properties["Code"], base_dir),
                handler=properties["Handler"],
                environment={
                    key: str(value)
                    for key, value in properties.get("Environment", {}).get("Variables", {}).items()
                },
                timeout=int(properties.get("Timeout", 3)),
                memory_mb=int(properties.get("MemorySize", 128)),
                layer_dirs=tuple(layers[arn] for arn in properties.get("Layers", [])),
                max_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", 2)),
                on_failure_queue=queue_ids[on_failure] if on_failure else None,
            )
        )
    return tuple(functions)


def _code_dir(code: dict[str, Any], base_dir: Path) -> Path:
    if code.get("S3Bucket") != _CODE_PLACEHOLDER_BUCKET:
        raise WiringError(f"code at {code} is not a local directory (CodeUri must be a path)")
    return (base_dir / code["S3Key"]).resolve()


def _routes(of_type: Any, resolver: _Resolver, function_of: Any) -> tuple[ApiRoute, ...]:
    stages = {
        properties["RestApiId"]: properties["StageName"]
        for properties in of_type("AWS::ApiGateway::Stage").values()
    }
    routes = []
    for logical_id, properties in of_type("AWS::ApiGateway::RestApi").items():
        body = properties.get("Body", {})
        key_schemes = {
            name
            for name, scheme in body.get("securityDefinitions", {}).items()
            if scheme.get("type") == "apiKey" and scheme.get("name", "").lower() == "x-api-key"
        }
        for path, methods in body.get("paths", {}).items():
            for method, operation in methods.items():
                integration = operation.get("x-amazon-apigateway-integration", {})
                if integration.get("type") != "aws_proxy":
                    continue
                routes.append(
                    ApiRoute(
                        api=logical_id,
                        method=method.upper(),
                        path=path,
                        function=function_of(integration["uri"]),
                        api_key_required=any(
                            scheme in key_schemes
                            for requirement in operation.get("security", [])
                            for scheme in requirement
                        ),
                        stage=stages.get(resolver.ref(logical_id), "Prod"),
                    )
                )
    return tuple(routes)
