"""ROS parameters declared from a config dataclass and read back into it.

A node's parameters are its stage's config: every field of the dataclass becomes one
parameter with the field's default and its docstring as the description; fields that are
dataclasses themselves become dotted groups (``filter.min_cutoff_hz``,
``post_opt.iterations``, ``plausibility.max_depth_m``). The dataclass stays the one place
each default lives; the node reads the parameters back into it, so ``__post_init__``
validates them, and a failure names the parameter.

    declare_config_parameters(node, CommandFilterConfig(), prefix="filter.")
    config = read_config_parameters(node, CommandFilterConfig, prefix="filter.")
    config = replace_config(config, {"min_cutoff_hz": 2.0})   # a live change, validated
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor

#: Appended to the description of parameters the node reads at start-up only.
STARTUP_ONLY_NOTE = " (read at start-up: restart the node to change it)"

_SCALARS = (bool, int, float, str)


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring under it in ``cls``'s source (first paragraph, one line).

    Empty when the source is not available (e.g. a frozen build).
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):  # fmt: skip
            docs[node.target.id] = " ".join(after.value.value.split("\n\n")[0].split())
    return docs


@cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _scalar_type(annotation: Any) -> type | None:
    """bool / int / float / str for a field annotation (``X | None`` is not a parameter)."""
    return annotation if annotation in _SCALARS else None


def _coerce(value: Any, kind: type, name: str) -> Any:
    """``value`` as the field's type (an int where a float is expected is fine)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{name}: must be a {kind.__name__}, got {value!r}")
    return value


def config_parameters(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted parameter name -> value of every scalar field of a config dataclass instance.

    Nested dataclass fields recurse with ``<field>.`` added to the prefix; fields that are
    neither a scalar (bool, int, float, str) nor a dataclass are skipped.
    """
    cls = type(config)
    types = _field_types(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(config_parameters(value, f"{prefix}{f.name}."))
            continue
        kind = _scalar_type(types.get(f.name))
        if kind is not None:
            out[prefix + f.name] = _coerce(value, kind, prefix + f.name)
    return out


def parameter_descriptions(config_type: type, prefix: str = "") -> dict[str, str]:
    """Dotted parameter name -> field docstring, for a config dataclass type."""
    docs = field_docs(config_type)
    types = _field_types(config_type)
    out: dict[str, str] = {}
    for f in dataclasses.fields(config_type):
        kind = types.get(f.name)
        if dataclasses.is_dataclass(kind):
            out.update(parameter_descriptions(kind, f"{prefix}{f.name}."))
        elif f.name in docs:
            out[prefix + f.name] = docs[f.name]
    return out


def declare_config_parameters(node, config: Any, prefix: str = "",
                              startup_only: Iterable[str] = ()) -> list[str]:  # fmt: skip
    """Declare one ROS parameter per scalar field of ``config`` (an instance: its values are
    the defaults); nested dataclasses become dotted groups.

    Args:
        node: the ``rclpy.node.Node``.
        config: a config dataclass instance, usually ``SomeConfig()``.
        prefix: added before every name, e.g. ``"filter."``.
        startup_only: full parameter names whose description gets :data:`STARTUP_ONLY_NOTE`.

    Returns:
        The declared names (with the prefix), in field order.
    """
    startup_only = frozenset(startup_only)
    descriptions = parameter_descriptions(type(config), prefix)
    names = []
    for name, value in config_parameters(config, prefix).items():
        text = descriptions.get(name, "") + (STARTUP_ONLY_NOTE if name in startup_only else "")
        node.declare_parameter(name, value, ParameterDescriptor(description=text.strip()))
        names.append(name)
    return names


def _parameter_named(message: str, cls: type, prefix: str) -> str | None:
    """The parameter a validation message of ``cls`` names (its longest field name in it)."""
    for name in sorted((f.name for f in dataclasses.fields(cls)), key=len, reverse=True):
        if name in message:
            return prefix + name
    return None


def build_config(config_type: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """A ``config_type`` from dotted parameter values (missing fields keep their defaults,
    nested ones those of the enclosing config's default).

    Raises:
        ValueError: a value of the wrong type or refused by ``__post_init__``; the message
            starts with the parameter's full name.
    """
    values = {**config_parameters(config_type(), prefix), **values}
    types = _field_types(config_type)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(config_type):
        kind = types.get(f.name)
        full = prefix + f.name
        if dataclasses.is_dataclass(kind):
            nested = {k: v for k, v in values.items() if k.startswith(f"{full}.")}
            if nested:
                kwargs[f.name] = build_config(kind, nested, f"{full}.")
        elif full in values:
            scalar = _scalar_type(kind)
            kwargs[f.name] = _coerce(values[full], scalar, full) if scalar else values[full]
    try:
        return config_type(**kwargs)
    except ValueError as exc:
        named = _parameter_named(str(exc), config_type, prefix) or f"{prefix}*"
        raise ValueError(f"{named}: {exc}") from exc


def read_config_parameters(node, config_type: type, prefix: str = "") -> Any:
    """The ``config_type`` built from the node's declared parameters under ``prefix``.

    Raises:
        ValueError: naming the parameter whose value the config refuses.
    """
    names = config_parameters(config_type(), prefix)
    return build_config(config_type, {n: node.get_parameter(n).value for n in names}, prefix)


def replace_config(config: Any, changes: Mapping[str, Any], prefix: str = "") -> Any:
    """A copy of ``config`` with dotted parameter values changed, validated like at start-up.

    Names outside ``prefix`` are ignored. Raises ValueError naming the parameter.
    """
    values = config_parameters(config, prefix)
    values.update({k: v for k, v in changes.items() if k in values})
    return build_config(type(config), values, prefix)
