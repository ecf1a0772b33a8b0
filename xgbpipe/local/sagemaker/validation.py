"""Request validation driven by botocore's service model, in the wording AWS's frontends use.

AWS reports constraint violations as `N validation error(s) detected: Value 'x' at 'path'
failed to satisfy constraint: Member must ...`, with member paths in lowerCamelCase. Reading the
constraints from the model keeps this in step with the real API instead of a hand-kept copy.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
import regex
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape

from xgbpipe.local.sagemaker.errors import ServiceError, validation_error

_MAX_REPORTED = 10


@cache
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


@cache
def _compiled(pattern: str) -> Any:
    """Model patterns are Java regexes; `regex` reads their `\\p{L}` classes, `re` does not."""
    try:
        return regex.compile(pattern)
    except regex.error:
        # One model pattern spells UTF-16 surrogates; AWS checks it, we cannot.
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value: Any) -> str:
    if value is None:
        return "null"
    return str(value)


def _violations(shape: Shape, value: Any, path: str) -> list[str]:
    def fail(constraint: str) -> list[str]:
        shown = _show(value)
        return [
            f"Value '{shown}' at '{path}' failed to satisfy constraint: Member must {constraint}"
        ]

    type_checks: dict[str, tuple[type, ...]] = {
        "string": (str,),
        "integer": (int,),
        "long": (int,),
        "float": (int, float),
        "double": (int, float),
        "boolean": (bool,),
        "structure": (dict,),
        "map": (dict,),
        "list": (list,),
    }
    expected = type_checks.get(shape.type_name)
    if expected and (not isinstance(value, expected) or _is_bool_as_number(shape, value)):
        raise ServiceError(
            "SerializationException",
            f"Unexpected value type for '{path}': expected {shape.type_name}",
        )

    meta = shape.metadata
    problems: list[str] = []
    if shape.type_name == "string":
        if "min" in meta and len(value) < meta["min"]:
            problems += fail(f"have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            problems += fail(f"have length less than or equal to {meta['max']}")
        enum: list[str] = getattr(shape, "enum", [])
        if enum and value not in enum:
            problems += fail(f"satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled and not compiled.fullmatch(value):
            problems += fail(f"satisfy regular expression pattern: {pattern}")
    elif shape.type_name in ("integer", "long", "float", "double"):
        if "min" in meta and value < meta["min"]:
            problems += fail(f"have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems += fail(f"have value less than or equal to {meta['max']}")
    elif isinstance(shape, StructureShape):
        problems += _structure_violations(shape, value, path)
    elif isinstance(shape, ListShape):
        problems += _length_violations(meta, value, path)
        for index, item in enumerate(value, start=1):
            problems += _violations(shape.member, item, f"{path}.{index}.member")
    elif isinstance(shape, MapShape):
        problems += _length_violations(meta, value, path)
        for key, item in value.items():
            problems += _violations(shape.key, key, f"{path}.{key}.key")
            problems += _violations(shape.value, item, f"{path}.{key}.value")
    return problems


def _is_bool_as_number(shape: Shape, value: Any) -> bool:
    return shape.type_name != "boolean" and isinstance(value, bool)


def _length_violations(meta: dict[str, Any], value: Any, path: str) -> list[str]:
    prefix = f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: Member must"
    problems = []
    if "min" in meta and len(value) < meta["min"]:
        problems.append(f"{prefix} have length greater than or equal to {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        problems.append(f"{prefix} have length less than or equal to {meta['max']}")
    return problems


def _structure_violations(shape: StructureShape, value: dict[str, Any], path: str) -> list[str]:
    problems = []
    prefix = f"{path}." if path else ""
    for name in shape.required_members:
        if value.get(name) is None:
            problems.append(
                f"Value null at '{prefix}{_camel(name)}' failed to satisfy constraint: "
                "Member must not be null"
            )
    for name, item in value.items():
        member = shape.members.get(name)
        if member is None:
            raise ServiceError("SerializationException", f"Unknown member '{prefix}{name}'")
        if item is not None:
            problems += _violations(member, item, f"{prefix}{_camel(name)}")
    return problems


def validate_input(service: str, operation: str, params: dict[str, Any]) -> None:
    """Raise ValidationException when `params` break the operation's input constraints."""
    input_shape = service_model(service).operation_model(operation).input_shape
    if input_shape is None:
        return
    problems = _violations(input_shape, params, "")
    if not problems:
        return
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    shown = "; ".join(problems[:_MAX_REPORTED])
    raise validation_error(f"{count} validation {noun} detected: {shown}")
