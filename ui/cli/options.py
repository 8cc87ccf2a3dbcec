"""Option values shared by several commands: name=value lists, per-observable error models, names."""

from __future__ import annotations


def parse_assignments(items: list[str] | None, option: str) -> dict[str, float]:
    """'kla=5' or 'kla=5,ocr=2' (repeatable) → {'kla': 5.0, 'ocr': 2.0}."""
    from calibration.errors import CalibrationError  # only when a command parses (keeps --help instant)

    values: dict[str, float] = {}
    for item in items or []:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, text = part.partition("=")
            try:
                values[name.strip()] = float(text)
            except ValueError:
                raise CalibrationError(f"{option} {part!r}: write name=number, e.g. {option} kla=5") from None
            if not sep or not name.strip():
                raise CalibrationError(f"{option} {part!r}: write name=number, e.g. {option} kla=5")
    return values


def parse_errors(text: str) -> str | dict[str, str]:
    """'prop' for every observable, or per observable: 'drug_medium=prop,oxygen=add'."""
    if "=" not in text:
        return text
    return {name.strip(): kind.strip() for name, _, kind in (part.partition("=") for part in text.split(","))}


def parse_names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def parse_param(text: str) -> tuple[str, float | str]:
    """'cl=1.1' -> ('cl', 1.1); 'cl=1.1 L/h' and 'f2=@bioav' keep the value as text."""
    from twin.errors import InvalidValueError

    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise InvalidValueError(f"--param {text!r}: write name=value (e.g. cl=1.1 or 'cl=1.1 L/h') or name=@column")
    try:
        return name, float(value)
    except ValueError:
        return name, value
