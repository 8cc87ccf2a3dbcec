"""What people type into the panel, checked before anything uses it.

Each check returns the value ready to use or raises ``InvalidInput`` with one sentence that names
the field, what is wrong with it and how to write it instead — never a traceback.
"""

from __future__ import annotations

import math

from ui.panel.errors import InvalidInput

MAX_TEXT = 2000


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def strengths_mg(text: str) -> list[float] | None:
    """'25, 50, 100' → [25.0, 50.0, 100.0]; blank → None (any dose may be recommended)."""
    values = []
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        value = _number(part.removesuffix("mg").strip())
        if value is None or value <= 0:
            raise InvalidInput(
                f"available strengths: {part[:40]!r} is not a dose in mg; write positive numbers "
                "separated by commas, like 25, 50, 100 (or leave it blank for any dose)"
            )
        values.append(value)
    return values or None


def target_window(text: str) -> str:
    """'LOW:HIGH' or one value (80–125 % around it), as the twin reads it; blank → no target.
    Only the shape is checked here (finite numbers); the twin checks 0 < low < high."""
    text = (text or "").strip()
    parts = text.split(":") if text else []
    if len(parts) > 2 or any(_number(p.strip()) is None for p in parts):
        raise InvalidInput(
            f"target window: cannot read {text[:40]!r}; write LOW:HIGH with two numbers, like 2:4, "
            "or one number X for 80–125 % of X (or leave it blank for no target)"
        )
    return text


def required_text(field: str, text: str, example: str) -> str:
    """A text field that must hold something, of a sane length."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput(f"{field}: it is empty; write it like {example}")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{field}: {len(text)} characters is too long; keep it under {MAX_TEXT}")
    return text


def free_text(field: str, text: str) -> str:
    """Optional free text (a filter, a comment), trimmed; refused only when absurdly long."""
    text = (text or "").strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{field}: {len(text)} characters is too long; keep it under {MAX_TEXT}")
    return text
