"""Read a file a user named: UTF-8 text, a real file, not empty, not absurdly large.

Every loader of a user's file (rig, scenario, patient, dataset, design space) reads it
through :func:`read_user_text`, so the four ways a file can be unusable before its
content is even looked at are refused the same way, in one line that names the file::

    error: liver4.toml: not UTF-8 text (byte 0xff at offset 12); fix: save the file as UTF-8

The error class is the caller's (``ConfigError`` for a rig, ``DatasetError`` for a
dataset, …) so each package keeps its one error tree and the CLI its one exit status.
``twin`` imports nothing of the project, so every layer may use this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from twin.errors import TwinError

# A rig, scenario, patient or design-space file is a few kB; a megabyte is already absurd.
MAX_CONFIG_BYTES = 1 << 20
# A dataset of a few million rows is plausible; beyond this the user has the wrong file.
MAX_DATASET_BYTES = 256 << 20


class UserFileError(TwinError):
    """A file that cannot be read as the text it should be (the default error class)."""


ErrorFactory = Callable[[str], Exception]


def read_user_text(
    path: str | Path, what: str, *, max_bytes: int = MAX_CONFIG_BYTES, error: ErrorFactory = UserFileError
) -> str:
    """The file's text, or ``error("<path>: <what went wrong>; fix: …")`` — never an OSError.

    ``what`` names the kind of file for the message ("rig file", "dataset", …).
    """
    path = Path(path)
    _check_is_readable_file(path, what, max_bytes, error)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(
            f"{path}: cannot read the {what} ({exc.strerror or exc}); fix: check the path and its permissions"
        ) from None
    if len(raw) > max_bytes:  # it grew between stat and read
        raise _too_large(path, what, len(raw), max_bytes, error)
    try:
        text = raw.decode("utf-8-sig")  # a BOM from a spreadsheet export is harmless
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{path} line {line}: the {what} is not UTF-8 text "
            f"(byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "fix: save the file as UTF-8"
        ) from None
    if "\x00" in text:
        raise error(f"{path}: the {what} contains NUL bytes (a binary file?); fix: give the text file")
    if not text.strip():
        raise error(f"{path}: the {what} is empty; fix: give a file with content (see the docs for its format)")
    return text


def _check_is_readable_file(path: Path, what: str, max_bytes: int, error: ErrorFactory) -> None:
    try:
        status = path.stat()
    except FileNotFoundError:
        raise error(f"cannot read {what} {path}: it does not exist; fix: check the path") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc}); fix: check the path") from None
    if path.is_dir():
        raise error(f"{path}: is a directory, not a {what}; fix: give the path of the file itself")
    if not path.is_file():
        raise error(f"{path}: is not a regular file (a device or pipe?); fix: give the path of a {what}")
    if status.st_size > max_bytes:
        raise _too_large(path, what, status.st_size, max_bytes, error)


def _too_large(path: Path, what: str, size: int, max_bytes: int, error: ErrorFactory) -> Exception:
    return error(
        f"{path}: the {what} is {size:,} bytes, above the limit of {max_bytes:,} bytes; "
        f"fix: give the right file (a {what} is much smaller)"
    )
