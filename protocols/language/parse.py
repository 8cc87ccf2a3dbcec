"""A protocol TOML file → ``Protocol``, collecting every problem with its line.

Values come from ``tomllib``; lines from the project's TOML line scanner
(``instruments.rig.toml_lines.read_toml``), keyed by paths such as ``("steps", 3, "volume")``.
Steps that do not build are kept as placeholders so that every other step is still
checked (and paths stay aligned with the file).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from typing import Any, ClassVar

from instruments.rig.toml_lines import read_toml
from protocols.errors import FieldError, Problem
from protocols.language.fields import convert_fields
from protocols.language.interlock import parse_interlock
from protocols.language.notify_config import NotifyConfig, check_config
from protocols.language.protocol import Drug, Header, Path, Protocol
from protocols.language.steps import STEP_TYPES, Step

TOP_LEVEL = ("protocol", "drug", "safety", "steps", "notify")
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclasses.dataclass(frozen=True)
class Unbuilt(Step):
    """Placeholder for a step with problems (never part of a valid protocol)."""

    kind: ClassVar[str] = "unbuilt"


class _Parser:
    def __init__(self, text: str, data: dict[str, Any], filename: str) -> None:
        self.text, self.data = text, data
        self.lines = read_toml(text, filename).lines
        self.problems: list[Problem] = []

    def line(self, path: Path) -> int:
        for end in range(len(path), 0, -1):
            if (found := self.lines.get(tuple(path[:end]))) is not None:
                return found
        return 1

    def problem(self, path: Path, message: str, fix: str) -> None:
        self.problems.append(Problem(self.line(path), message, fix))

    def unknown_keys(self, raw: dict, known: tuple[str, ...], path: Path, owner: str) -> None:
        for key in raw:
            if key not in known:
                self.problem(path + (key,), f"{owner} has no field '{key}'", f"use one of {', '.join(known)}")

    def table(self, name: str) -> dict:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            self.problem((name,), f"'{name}' must be a table", f"write it as a [{name}] section")
            return {}
        return value

    def fields(self, cls: type, raw: dict, path: Path, owner: str) -> dict[str, Any]:
        values, errors = convert_fields(cls, raw, owner)
        for name, error in errors.items():
            self.problem(path + (name,) if name in raw else path, error.message, error.fix)
        return values

    def header(self) -> tuple[dict[str, Any], Drug | None]:
        raw = self.table("protocol")
        known = tuple(f.name for f in dataclasses.fields(Header))
        self.unknown_keys(raw, known, ("protocol",), "[protocol]")
        values = self.fields(Header, raw, ("protocol",), "protocol")
        values.update({k: raw[k] for k in ("clock_rate", "description") if k in raw})
        drug_raw = self.table("drug")
        self.unknown_keys(drug_raw, ("name", "molecular_weight", "stock"), ("drug",), "[drug]")
        drug_values = self.fields(Drug, drug_raw, ("drug",), "drug")
        drug = (
            Drug(**drug_values)
            if len(drug_values) == len(drug_raw) and "name" in drug_values and "molecular_weight" in drug_values
            else None
        )
        return values, drug

    def interlocks(self) -> list:
        safety = self.table("safety")
        self.unknown_keys(safety, ("interlocks",), ("safety",), "[safety]")
        rules, found = safety.get("interlocks", []), []
        after = self.line(("safety", "interlocks"))
        for rule in rules if isinstance(rules, list) else [rules]:
            after = self._element_line(rule, after)
            try:
                self.lines[("safety", "interlocks", len(found))] = after
                found.append(parse_interlock(rule))
            except FieldError as exc:
                self.problems.append(Problem(after, exc.message, exc.fix))
        return found

    def notify(self) -> NotifyConfig | None:
        if "notify" not in self.data:
            return None
        config, problems = check_config(self.data["notify"])
        for path, message, fix in problems:
            self.problem(("notify", *path), message, fix)
        return config

    def _element_line(self, rule: object, after: int) -> int:
        lines = self.text.splitlines()
        for number in range(after, len(lines) + 1):
            if isinstance(rule, str) and rule in lines[number - 1]:
                return number
        return after

    def steps(self, raws: object, path: Path) -> tuple[Step, ...]:
        if not isinstance(raws, list) or not all(isinstance(r, dict) for r in raws):
            self.problem(path, "steps must be a list of tables", "write each step as a [[steps]] section")
            return ()
        return tuple(self.step(raw, path + (index,)) for index, raw in enumerate(raws))

    def step(self, raw: dict, path: Path) -> Step:
        kind = raw.get("kind")
        cls = STEP_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            what = f"unknown step kind {kind!r}" if "kind" in raw else "step has no kind"
            self.problem(path + ("kind",), what, f"use one of {', '.join(STEP_TYPES)}")
            return Unbuilt(line=self.line(path))
        known = ("kind", *(f.name for f in dataclasses.fields(cls) if f.name != "line"))
        before = len(self.problems)
        self.unknown_keys(raw, known, path, f"{kind} step")
        values = self.fields(cls, raw, path, kind)
        broken = len(self.problems) > before
        if kind == "repeat":
            values["steps"] = self.steps(raw.get("steps", []), path + ("steps",))
        if broken:
            return Unbuilt(line=self.line(path))
        try:
            return cls(**values, line=self.line(path))
        except FieldError as exc:
            self.problem(path, exc.message, exc.fix)
            return Unbuilt(line=self.line(path))


def parse_text(text: str, filename: str = "protocol.toml") -> tuple[Protocol | None, list[Problem]]:
    """The protocol in ``text`` (None when its header does not build) and every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        reason = _TOML_LINE.sub("", str(exc)).strip()
        return None, [
            Problem(
                int(match.group(1)) if match else max(len(text.splitlines()), 1),  # "at end of document"
                f"not valid TOML ({reason})",
                "check quotes, brackets and '=' on that line",
            )
        ]
    parser = _Parser(text, data, filename)
    for key in data:
        if key not in TOP_LEVEL:
            parser.problem((key,), f"unknown section '{key}'", f"use {', '.join(TOP_LEVEL)}")
    header, drug = parser.header()
    interlocks = parser.interlocks()
    notify = parser.notify()
    steps = parser.steps(data.get("steps", []), ("steps",))
    if not steps:
        parser.problem(("steps",), "the protocol has no steps", "add [[steps]] sections (kind = 'perfuse', ...)")
    if drug is None or "name" not in header or "chips" not in header:
        if not parser.problems:  # never a refusal without a reason (a missing key a default hid)
            missing = [f"[protocol] {k}" for k in ("name", "chips") if k not in header]
            missing += ["[drug] name and molecular_weight"] if drug is None else []
            parser.problem(("protocol",), f"{', '.join(missing)} missing", "add them (see docs/protocols.md)")
        return None, parser.problems
    try:
        protocol = Protocol(
            header["name"],
            drug,
            header["chips"],
            steps,
            tuple(interlocks),
            header.get("clock_rate"),
            header.get("description", ""),
            parser.lines,
            notify,
        )
    except FieldError as exc:
        parser.problem(("protocol", "clock_rate"), exc.message, exc.fix)
        return None, parser.problems
    return protocol, parser.problems
