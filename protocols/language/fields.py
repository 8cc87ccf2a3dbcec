"""Typed fields of protocol steps, converted the same way from TOML and from Python.

A step's dataclass fields carry metadata saying what they hold — a quantity of some kind
(``qfield("volume")``), a list of them, a list of names, a count, a condition — and
``convert_fields`` turns raw values (TOML strings, numbers, lists, or already-built pint
Quantities) into the canonical ones, collecting one ``FieldError`` per bad field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from protocols.errors import FieldError
from protocols.language.interlock import parse_condition
from protocols.language.quantities import quantity

MISSING = dataclasses.MISSING


def qfield(kind: str, default: Any = None, example: str = "") -> Any:
    """A quantity of ``kind`` (see protocols.language.quantities.KINDS); None means not given."""
    return dataclasses.field(default=default, metadata={"convert": "quantity", "kind": kind, "example": example})


def required_q(kind: str, example: str) -> Any:
    return dataclasses.field(metadata={"convert": "quantity", "kind": kind, "example": example})


def qlist(kind: str, example: str = "") -> Any:
    return dataclasses.field(default=(), metadata={"convert": "quantities", "kind": kind, "example": example})


def schedules_field() -> Any:
    return dataclasses.field(
        default=(), metadata={"convert": "schedules", "kind": "time", "example": "[['0 h', '2 h', '8 h']]"}
    )


def names(default: tuple[str, ...] = (), example: str = "['liver1']") -> Any:
    return dataclasses.field(default=default, metadata={"convert": "names", "example": example})


def text(default: Any = MISSING, choices: tuple[str, ...] = (), example: str = "") -> Any:
    return dataclasses.field(default=default, metadata={"convert": "text", "choices": choices, "example": example})


def count(example: str = "3") -> Any:
    return dataclasses.field(metadata={"convert": "count", "example": example})


def condition(example: str = "'oxygen > 80 % for 10 min'") -> Any:
    return dataclasses.field(metadata={"convert": "condition", "example": example})


def _quantities(value: Any, kind: str, what: str) -> tuple:
    if isinstance(value, (str, int, float)) or not hasattr(value, "__iter__"):
        raise FieldError(f"{what} {value!r} is not a list", "write a list like ['10 uM', '30 uM']")
    return tuple(quantity(v, kind, what) for v in value)


def _schedules(value: Any, kind: str, what: str) -> tuple:
    if isinstance(value, (str, int, float)) or not hasattr(value, "__iter__"):
        raise FieldError(
            f"{what} {value!r} is not a list of schedules", "write [['0 h', '2 h', '8 h'], ['1 h', '24 h']]"
        )
    return tuple(_quantities(s, kind, what) for s in value)


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not hasattr(value, "__iter__") or not all(isinstance(v, str) and v.strip() for v in value):
        raise FieldError(f"{what} {value!r} is not a list of names", "write a list like ['liver1', 'liver2']")
    twice = sorted({v for v in value if list(value).count(v) > 1})
    if twice:
        raise FieldError(
            f"{what} names {', '.join(repr(v) for v in twice)} more than once",
            "name each only once (a chip listed twice would be dosed twice)",
        )
    return tuple(value)


def _text(value: Any, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str):
        raise FieldError(
            f"{what} {value!r} is not text", f"write it in quotes, e.g. '{choices[0] if choices else 'name'}'"
        )
    if not value.strip():
        raise FieldError(f"{what} is empty", f"write it in quotes, e.g. '{choices[0] if choices else 'name'}'")
    if choices and value not in choices:
        raise FieldError(f"{what} {value!r} is not one of {', '.join(choices)}", f"use one of {', '.join(choices)}")
    return value


MAX_COUNT = 10_000  # a repeat beyond this is a typo; the expanded protocol is bounded too (steps.MAX_STEPS)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError(f"{what} {value!r} is not a positive whole number", "write a count like 3")
    if value > MAX_COUNT:
        raise FieldError(f"{what} {value} is more than {MAX_COUNT:,}", f"repeat at most {MAX_COUNT:,} times")
    return value


CONVERTERS: dict[str, Callable[[Any, dict, str], Any]] = {
    "quantity": lambda v, m, w: quantity(v, m["kind"], w),
    "quantities": lambda v, m, w: _quantities(v, m["kind"], w),
    "schedules": lambda v, m, w: _schedules(v, m["kind"], w),
    "names": lambda v, m, w: _names(v, w),
    "text": lambda v, m, w: _text(v, m["choices"], w),
    "count": lambda v, m, w: _count(v, w),
    "condition": lambda v, m, w: v if not isinstance(v, str) else parse_condition(v, w),
}


def convertible_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "convert" in f.metadata]


def convert_value(f: dataclasses.Field, value: Any, owner: str) -> Any:
    """One field's raw value converted (None stays None for optional fields)."""
    if value is None and f.default is not MISSING:
        return f.default
    return CONVERTERS[f.metadata["convert"]](value, f.metadata, f"{owner} {f.name}")


def convert_fields(cls: type, raw: dict[str, Any], owner: str) -> tuple[dict[str, Any], dict[str, FieldError]]:
    """Converted values of the fields present in ``raw`` and the errors, by field name.

    A required field that is absent is an error too; unknown keys are the caller's business.
    """
    values: dict[str, Any] = {}
    errors: dict[str, FieldError] = {}
    for f in convertible_fields(cls):
        if f.name not in raw:
            if f.default is MISSING:
                example = f.metadata.get("example", "")
                errors[f.name] = FieldError(f"{owner} needs '{f.name}'", f"add {f.name} = {example}".rstrip(" ="))
            continue
        try:
            values[f.name] = convert_value(f, raw[f.name], owner)
        except FieldError as exc:
            errors[f.name] = exc
    return values, errors


def normalise(instance: Any, owner: str) -> None:
    """Convert a frozen dataclass's fields in place (the Python API); raise the first error."""
    for f in convertible_fields(type(instance)):
        object.__setattr__(instance, f.name, convert_value(f, getattr(instance, f.name), owner))
