"""What every local-folder data set adapter shares: options, the root folder, label tables and anonymous ids."""
from __future__ import annotations

import contextvars
import csv
import hashlib
import hmac
import io
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.options import Option, read_dataset_options

__all__ = [
    "COMMON_OPTIONS",
    "LINE",
    "anon_id",
    "bad_value",
    "folder_check",
    "folder_options",
    "id_key",
    "using_id_key",
    "parse_options",
    "read_table",
    "require_file",
    "require_root",
]

LINE = "#line"  # key added to every row read by read_table: its line number in the file, for error messages
COMMON_OPTIONS: dict[str, Option] = {
    "root": Option(None, str, "the local copy of the data set (a folder)"),
    "limit": Option(None, int, "at most this many images (whole patients, classes in proportion), for quick runs",
                    low=2),
    "id_salt": Option("", str, "extra salt mixed into the keyed ids (the secret is the store's key)"),
    "id_key_file": Option(None, str, "a file holding the id key (hex); default: the store's own random key"),
    "modalities": Option(["MG"], list, "DICOM Modality values accepted", item=str),
}


def folder_options(own: dict[str, Option]) -> dict[str, Option]:
    """A folder adapter's options: the common ones and its own (its card's `options`)."""
    return {**COMMON_OPTIONS, **own}


def parse_options(name: str, options: dict | None, own: dict[str, Option]) -> dict[str, Any]:
    """Validate dataset.options against the common and the adapter's own options; fill defaults."""
    out = read_dataset_options(name, options, folder_options(own))
    return {key: list(value) if isinstance(value, tuple) else value for key, value in out.items()}


def require_root(name: str, options: dict[str, Any], layout: str) -> Path:
    """The data set's root folder (dataset.options.root), or a one-line error that says what it should hold."""
    if not options.get("root"):
        raise BenchmarkError(f"dataset.options.root is missing: {name} reads a local copy; set it to a folder "
                             f"with {layout}")
    root = Path(options["root"]).expanduser()
    if not root.is_dir():
        raise BenchmarkError(f"dataset.options.root = {str(root)!r} is not a folder; {name} expects {layout}")
    return root


def folder_check(name: str, own: dict[str, Option], layout: str,
                 required: tuple[str, ...] = ()) -> Callable[[Any], None]:
    """A plan-time check of a folder adapter's dataset.options: types, the root folder, required options."""
    def check(spec: Any) -> None:
        options = parse_options(name, spec.options, own)
        require_root(name, options, layout)
        for key in required:
            if not options.get(key):
                raise BenchmarkError(f"dataset.options.{key} is missing: {name} expects {layout}")
    check.__doc__ = f"Check dataset.options for {name} before any work."
    return check


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


KEY_FILE = "id-key"  # under the store's secrets folder: 32 random bytes as hex, created once, mode 0600
_KEY: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("id_key", default=None)
_PROCESS_KEY = secrets.token_bytes(32)  # outside a data stage: ids valid in this process only, never guessable


def _read_key(path: Path) -> bytes:
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{path}: unreadable id key ({getattr(exc, 'strerror', None) or 'not hex'}); "
                             "it must hold at least 16 random bytes as hex") from None
    if len(key) < 16:
        raise BenchmarkError(f"{path}: id key is {len(key)} bytes; use at least 16 random bytes as hex "
                             "(e.g. python -c \"import secrets; print(secrets.token_hex(32))\")")
    return key


def id_key(secrets_dir: Path, key_file: str | None = None) -> bytes:
    """The key that hashes patient and image ids: key_file if given, else the store's own (created once)."""
    if key_file:
        return _read_key(Path(key_file).expanduser())
    path = Path(secrets_dir) / KEY_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # atomic and exclusive: when two runs race, the first key wins and both read it
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return _read_key(path)


@contextmanager
def using_id_key(key: bytes) -> Iterator[None]:
    """Hash ids with key inside the block (the data stage sets the store's key around an adapter)."""
    token = _KEY.set(key)
    try:
        yield
    finally:
        _KEY.reset(token)


def anon_id(name: str, salt: str, kind: str, original: str) -> str:
    """A keyed hash (HMAC-SHA256, 16 hex digits) of an original id: stable per store and key, never the id itself,
    and not reversible by guessing ids without the key."""
    key = _KEY.get() or _PROCESS_KEY
    digest = hmac.new(key, "\0".join((name, salt, kind, str(original))).encode(), hashlib.sha256).hexdigest()[:16]
    return f"{kind[0]}{digest}"
