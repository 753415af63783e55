"""What every local-folder data set adapter shares: options, the root folder, label tables and anonymous ids."""
from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError

__all__ = [
    "COMMON_OPTIONS",
    "LINE",
    "anon_id",
    "bad_value",
    "parse_options",
    "read_table",
    "require_file",
    "require_root",
]

LINE = "#line"  # key added to every row read by read_table: its line number in the file, for error messages
# name -> (default, expected type)
COMMON_OPTIONS: dict[str, tuple[Any, type]] = {
    "root": (None, str),  # the local copy of the data set
    "limit": (None, int),  # at most this many images (whole patients, classes in proportion), for quick runs
    "id_salt": ("", str),  # extra salt for the anonymous ids; set a private one when patient ids are guessable
    "modalities": (["MG"], list),  # DICOM Modality values accepted
}


def parse_options(name: str, options: dict | None, own: dict[str, tuple[Any, type]]) -> dict[str, Any]:
    """Validate dataset.options against the common and the adapter's own options; fill defaults."""
    allowed = {**COMMON_OPTIONS, **own}
    raw = dict(options or {})
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise BenchmarkError(f"dataset.options.{unknown[0]} is not an option of {name}; "
                             f"allowed: {', '.join(sorted(allowed))}")
    out = {}
    for key, (default, kind) in allowed.items():
        value = raw.get(key, default)
        ok = value is None or (isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool))
        if not ok:
            raise BenchmarkError(f"dataset.options.{key} = {value!r} is invalid for {name}: "
                                 f"expected {'a list' if kind is list else kind.__name__}")
        out[key] = list(value) if isinstance(value, list) else value
    if out["limit"] is not None and out["limit"] < 2:
        raise BenchmarkError(f"dataset.options.limit = {out['limit']} is invalid for {name}: use 2 or more images")
    if not all(isinstance(m, str) for m in out["modalities"]) or not out["modalities"]:
        raise BenchmarkError(f"dataset.options.modalities = {out['modalities']!r} is invalid for {name}: "
                             "expected a list of DICOM Modality values such as [\"MG\"]")
    return out


def require_root(name: str, options: dict[str, Any], layout: str) -> Path:
    """The data set's root folder (dataset.options.root), or a one-line error that says what it should hold."""
    if not options.get("root"):
        raise BenchmarkError(f"dataset.options.root is missing: {name} reads a local copy; set it to a folder "
                             f"with {layout}")
    root = Path(options["root"]).expanduser()
    if not root.is_dir():
        raise BenchmarkError(f"dataset.options.root = {str(root)!r} is not a folder; {name} expects {layout}")
    return root


def require_file(root: Path, names: Iterable[str], name: str, layout: str) -> Path:
    """The first of names that exists under root, or an error naming the option root and the expected layout."""
    names = list(names)
    for rel in names:
        if (root / rel).is_file():
            return root / rel
    raise BenchmarkError(f"{root / names[0]}: label file not found under dataset.options.root; "
                         f"{name} expects {layout}")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # spreadsheet exports in Windows-1252/Latin-1
        return data.decode("latin-1")


def read_table(path: Path, columns: Iterable[str], delimiter: str | None = ",") -> list[dict[str, str]]:
    """Rows of a delimited text file as dicts of stripped strings (plus LINE); a missing column names the file."""
    path = Path(path)
    try:
        text = _decode(path.read_bytes())
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read the label file ({exc.strerror or type(exc).__name__})") from None
    columns = list(columns)
    if delimiter is None:  # whichever of ; , tab the header line uses most
        first = text.split("\n", 1)[0]
        delimiter = max((";", ",", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not any(header):
            raise BenchmarkError(f"{path}: empty label file; expected a header row with columns "
                                 f"{', '.join(columns)}")
        for column in columns:
            if column not in header:
                found = ", ".join(repr(h) for h in header[:20] if h)
                raise BenchmarkError(f"{path}: column '{column}' missing (separator {delimiter!r}; found {found})")
        rows = []
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append({key: value.strip() for key, value in zip(header, row) if key})
                rows[-1][LINE] = str(reader.line_num)
    except csv.Error as exc:
        raise BenchmarkError(f"{path}: unreadable CSV near line {reader.line_num} ({exc})") from None
    return rows


def bad_value(path: Path, row: dict[str, str], column: str, expected: str) -> BenchmarkError:
    """The one-line error for a label value that cannot be interpreted (file, line, column, value)."""
    return BenchmarkError(f"{path}: line {row.get(LINE, '?')}: column '{column}' has {row.get(column, '')!r}; "
                          f"expected {expected}")


def anon_id(name: str, salt: str, kind: str, original: str) -> str:
    """A salted SHA-256 of an original id (16 hex digits): stable per data set, never the id itself."""
    digest = hashlib.sha256("\0".join((name, salt, kind, str(original))).encode()).hexdigest()[:16]
    return f"{kind[0]}{digest}"
