"""The assay inbox: a folder where LC-MS / plate-reader results arrive as CSV files.

``AssayInbox(folder, known_samples).poll(deliver)`` takes every settled ``*.csv`` in the
folder, parses and validates it (``assay_csv``), and:

* a valid file: its records are handed to ``deliver(records)`` (the caller stores them);
  only when ``deliver`` returns is the file's SHA-256 written to the ledger and the file
  moved to ``done/``. If ``deliver`` raises, the file stays for the next poll.
* an invalid file — *all or nothing*: one bad row rejects the whole file, so a result set
  is never half-imported — goes to ``rejected/`` with ``<name>.reason.txt`` listing every
  row error; fix it and drop it again.
* a file whose content was already imported (same SHA-256 in the ledger, whatever its
  name) goes to ``rejected/`` with the reason "already imported"; it is never imported
  twice. Rejected content is not blocked: corrected sample records may make it valid.

The ledger is ``.imported.json`` in the inbox folder, rewritten atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

from instruments.drivers.assay_csv import AssayRecord, KnownSample, RowError, parse_assay_csv

LEDGER_NAME = ".imported.json"
Deliver = Callable[[list[AssayRecord]], None]


@dataclass
class FileOutcome:
    file: str
    sha256: str
    accepted: bool
    records: list[AssayRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    moved_to: Path | None = None


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class AssayInbox:
    """Poll-based file drop; ``settle_s``: ignore files modified more recently (still being written)."""

    def __init__(
        self,
        folder: Path | str,
        known_samples: Mapping[str, KnownSample] | Callable[[], Mapping[str, KnownSample]],
        *,
        time_tolerance_s: float = 60.0,
        settle_s: float = 1.0,
    ) -> None:
        self.folder = Path(folder)
        self.done, self.rejected = self.folder / "done", self.folder / "rejected"
        for path in (self.folder, self.done, self.rejected):
            path.mkdir(parents=True, exist_ok=True)
        self._known = known_samples
        self.time_tolerance_s, self.settle_s = time_tolerance_s, settle_s
        self.ledger_path = self.folder / LEDGER_NAME

    def known_samples(self) -> Mapping[str, KnownSample]:
        return self._known() if callable(self._known) else self._known

    def ledger(self) -> dict[str, dict[str, str]]:
        if not self.ledger_path.exists():
            return {}
        return json.loads(self.ledger_path.read_text(encoding="utf-8"))

    def pending(self) -> list[Path]:
        """Settled CSV files waiting in the inbox, oldest first."""
        now = time.time()
        files = [
            p
            for p in self.folder.glob("*.csv")
            if p.is_file() and not p.name.startswith(".") and now - p.stat().st_mtime >= self.settle_s
        ]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def poll(self, deliver: Deliver | None = None) -> list[FileOutcome]:
        """Process every pending file once; returns one outcome per file handled."""
        return [outcome for path in self.pending() if (outcome := self._process(path, deliver)) is not None]

    def watch(self, deliver: Deliver, stop: threading.Event, interval_s: float = 2.0) -> None:
        """Poll until ``stop`` is set (run it in a thread; set ``stop`` to end it)."""
        while not stop.is_set():
            self.poll(deliver)
            stop.wait(interval_s)

    def _process(self, path: Path, deliver: Deliver | None) -> FileOutcome | None:
        digest = sha256_of(path)
        previous = self.ledger().get(digest)
        if previous is not None:
            reason = f"already imported as {previous['file']!r} at {previous['imported_at']} (sha256 {digest})"
            return self._reject(path, digest, [reason])
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            return self._reject(path, digest, [f"row 1: not UTF-8 text ({exc.reason}); export the CSV as UTF-8"])
        records, errors = parse_assay_csv(text, path.name, self.known_samples(), self.time_tolerance_s)
        if errors:
            return self._reject(path, digest, [str(e) for e in errors])
        if deliver is not None:
            deliver(records)  # raises → file left in place, retried next poll
        self._remember(digest, path.name)
        return FileOutcome(path.name, digest, True, records, moved_to=self._move(path, self.done))

    def _reject(self, path: Path, digest: str, errors: list[str]) -> FileOutcome:
        target = self._move(path, self.rejected)
        header = f"{path.name} rejected at {_utc_now()} (sha256 {digest}); nothing was imported from it.\n"
        target.with_name(target.name + ".reason.txt").write_text(header + "\n".join(errors) + "\n", encoding="utf-8")
        return FileOutcome(path.name, digest, False, errors=errors, moved_to=target)

    def _remember(self, digest: str, name: str) -> None:
        ledger = self.ledger()
        ledger[digest] = {"file": name, "imported_at": _utc_now()}
        temporary = self.ledger_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(ledger, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.ledger_path)

    @staticmethod
    def _move(path: Path, folder: Path) -> Path:
        target = folder / path.name
        if target.exists():
            target = folder / f"{path.stem}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}{path.suffix}"
        os.replace(path, target)
        return target


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


__all__ = ["AssayInbox", "AssayRecord", "FileOutcome", "KnownSample", "RowError", "sha256_of"]
