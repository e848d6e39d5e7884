"""graphql-js 16's words on top of graphql-core: the server runs graphql-js, we do not.

graphql-core follows graphql-js 17: it quotes names with ``'`` where 16 uses ``"``,
words two "required argument" messages differently, reports unused variables on
entering an operation (16: on leaving it, so after the errors inside it), and prints
invalid variable values as Python reprs. A client that shows the server's message
(or a test that pins it) sees the difference, so the dev server translates.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableDefinitionNode,
    specified_rules,
    type_from_ast,
)
from graphql.pyutils import Undefined, suggestion_list
from graphql.pyutils import inspect as core_inspect
from graphql.validation import ASTValidationRule, NoUnusedVariablesRule

_QUOTED = re.compile(r"'([^']*)'")
_FIELD_ARGUMENT = re.compile(
    r"^Argument '(?P<type>\w+)\.(?P<field>\w+)\((?P<arg>\w+):\)' of type '(?P<of>[^']+)' "
    r"is required, but it was not provided\.$"
)
_DIRECTIVE_ARGUMENT = re.compile(
    r"^Argument '@(?P<directive>\w+)\((?P<arg>\w+):\)' of type '(?P<of>[^']+)' "
    r"is required, but it was not provided\.$"
)
_MAX_SUGGESTIONS = 5
_MAX_ARRAY_LENGTH = 10
_MAX_DEPTH = 2


def js_message(message: str) -> str:
    """A parse or validation message as graphql-js 16 words it."""
    found = _FIELD_ARGUMENT.match(message)
    if found:
        return (
            f'Field "{found["field"]}" argument "{found["arg"]}" of type "{found["of"]}" '
            "is required, but it was not provided."
        )
    found = _DIRECTIVE_ARGUMENT.match(message)
    if found:
        return (
            f'Directive "@{found["directive"]}" argument "{found["arg"]}" of type '
            f'"{found["of"]}" is required, but it was not provided.'
        )
    return _QUOTED.sub(r'"\1"', message)


class _NoUnusedVariablesOnLeave(NoUnusedVariablesRule):
    """graphql-js 16 reports unused variables when it leaves the operation."""

    def enter_operation_definition(self, *_args: Any) -> None:
        return None

    def leave_operation_definition(self, operation: OperationDefinitionNode, *args: Any) -> None:
        NoUnusedVariablesRule.enter_operation_definition(self, operation, *args)


VALIDATION_RULES: tuple[type[ASTValidationRule], ...] = tuple(
    _NoUnusedVariablesOnLeave if rule is NoUnusedVariablesRule else rule for rule in specified_rules
)


# -- values as graphql-js's inspect() prints them -------------------------------------------


def inspect(value: object, depth: int = 0) -> str:
    """``inspect`` of graphql-js 16 for a JSON value: ``{ a: [1, "b"] }``, ``true``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return _js_number(value)
    if isinstance(value, list):
        if not value:
            return "[]"
        if depth >= _MAX_DEPTH:
            return "[Array]"
        items = [inspect(v, depth + 1) for v in value[:_MAX_ARRAY_LENGTH]]
        rest = len(value) - _MAX_ARRAY_LENGTH
        if rest == 1:
            items.append("... 1 more item")
        elif rest > 1:
            items.append(f"... {rest} more items")
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        if depth >= _MAX_DEPTH:
            return "[Object]"
        fields = ", ".join(f"{k}: {inspect(v, depth + 1)}" for k, v in value.items())
        return "{ " + fields + " }"
    return str(value)


def _js_number(value: int | float) -> str:
    # JSON numbers reach us as int or float; JavaScript prints 5.0 as "5".
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    # Python pads exponents ("1e-07"); JavaScript does not ("1e-7").
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", repr(value))


def _did_you_mean(suggestions: Iterable[str], sub: str = "") -> str:
    quoted = [f'"{s}"' for s in suggestions][:_MAX_SUGGESTIONS]
    lead = " Did you mean " + (sub + " " if sub else "")
    if not quoted:
        return ""
    if len(quoted) == 1:
        return lead + quoted[0] + "?"
    if len(quoted) == 2:
        return lead + quoted[0] + " or " + quoted[1] + "?"
    return lead + ", ".join(quoted[:-1]) + ", or " + quoted[-1] + "?"


# -- variable coercion, graphql-js 16's coerceVariableValues / coerceInputValue --------------

Path = tuple[str | int, ...]
OnError = Callable[[Path, object, str], None]


def variable_errors(
    schema: GraphQLSchema, operation: OperationDefinitionNode, inputs: Mapping[str, Any]
) -> list[GraphQLError]:
    """The errors graphql-js 16 reports for ``inputs`` (empty: the values coerce).

    Run before execution; when it finds nothing graphql-core coerces the same values.
    """
    errors: list[GraphQLError] = []
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        var_type = type_from_ast(schema, definition.type)
        if var_type is None:
            continue  # validation already refused an unknown type
        if name not in inputs:
            if definition.default_value is None and isinstance(var_type, GraphQLNonNull):
                errors.append(
                    GraphQLError(
                        f'Variable "${name}" of required type "{var_type}" was not provided.',
                        definition,
                    )
                )
            continue
        value = inputs[name]
        if value is None and isinstance(var_type, GraphQLNonNull):
            errors.append(
                GraphQLError(
                    f'Variable "${name}" of non-null type "{var_type}" must not be null.',
                    definition,
                )
            )
            continue

        def report(
            path: Path,
            invalid: object,
            message: str,
            name: str = name,
            node: VariableDefinitionNode = definition,
        ) -> None:
            prefix = f'Variable "${name}" got invalid value {inspect(invalid)}'
            if path:
                prefix += f' at "{name}{_print_path(path)}"'
            errors.append(GraphQLError(f"{prefix}; {message}", node))

        _check_value(value, var_type, report, ())  # type: ignore[arg-type]
    return errors


def _print_path(path: Path) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)


def _check_value(value: object, of: GraphQLInputType, report: OnError, path: Path) -> None:
    if isinstance(of, GraphQLNonNull):
        if value is None:
            report(path, value, f'Expected non-nullable type "{of}" not to be null.')
            return
        _check_value(value, of.of_type, report, path)
        return
    if value is None:
        return
    if isinstance(of, GraphQLList):
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check_value(item, of.of_type, report, (*path, index))
        else:
            _check_value(value, of.of_type, report, path)  # a list of one
        return
    if isinstance(of, GraphQLInputObjectType):
        _check_object(value, of, report, path)
        return
    if isinstance(of, GraphQLEnumType):
        _check_enum(value, of, report, path)
        return
    if isinstance(of, GraphQLScalarType):
        _check_scalar(value, of, report, path)


def _check_object(value: object, of: GraphQLInputObjectType, report: OnError, path: Path) -> None:
    if not isinstance(value, dict):
        report(path, value, f'Expected type "{of.name}" to be an object.')
        return
    for field_name, field in of.fields.items():
        if field_name not in value:
            if field.default_value is Undefined and isinstance(field.type, GraphQLNonNull):
                report(
                    path,
                    value,
                    f'Field "{field_name}" of required type "{field.type}" was not provided.',
                )
            continue
        _check_value(value[field_name], field.type, report, (*path, field_name))
    for key in value:
        if key not in of.fields:
            hint = _did_you_mean(suggestion_list(key, list(of.fields)))
            report(path, value, f'Field "{key}" is not defined by type "{of.name}".{hint}')


def _check_enum(value: object, of: GraphQLEnumType, report: OnError, path: Path) -> None:
    if not isinstance(value, str):
        report(
            path, value, f'Enum "{of.name}" cannot represent non-string value: {inspect(value)}.'
        )
        return
    if value not in of.values:
        hint = _did_you_mean(suggestion_list(value, list(of.values)), "the enum value")
        report(path, value, f'Value {inspect(value)} does not exist in "{of.name}" enum.{hint}')


def _check_scalar(value: object, of: GraphQLScalarType, report: OnError, path: Path) -> None:
    try:
        of.parse_value(value)
    except GraphQLError as err:
        # graphql-core ends the message with a Python repr of the value.
        report(path, value, err.message.replace(core_inspect(value), inspect(value)))
    except (TypeError, ValueError) as err:
        report(path, value, f'Expected type "{of.name}". {err}')
