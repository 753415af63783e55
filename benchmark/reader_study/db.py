"""The study file: one SQLite database (WAL) holding the images (PNG bytes), readers, each reader's order and answers.

Case ids are the run's (already keyed) image ids hashed again with a random salt that is never stored, so nothing in
the study file links back to a patient or to the run's ids. Tokens are stored only as SHA-256 hashes. Which images are
synthetic is in the `items` table and in the organiser's exports, never in what a reader's browser receives.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from benchmark.errors import BenchmarkError

__all__ = ["STUDY_FILE", "connect", "create_schema", "read_meta", "study_file"]

STUDY_FILE = "study.sqlite"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
  item INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, case_id TEXT NOT NULL,
  synthetic INTEGER NOT NULL CHECK (synthetic IN (0, 1)),  -- 1: made by the lesion GAN
  truth INTEGER NOT NULL CHECK (truth IN (0, 1)),  -- the case's cancer label before any manipulation
  direction TEXT NOT NULL, png BLOB NOT NULL,
  width INTEGER NOT NULL, height INTEGER NOT NULL,  -- of the image in its own pixels (clicks are in these units)
  edited BLOB,  -- fakes: packed bits (row-major, height x width) of the pixels the GAN moved by more than 0.02
  detector REAL,  -- the real-vs-fake detector's probability that the image is fake (NULL: not scored)
  UNIQUE (case_id, synthetic));
CREATE TABLE readers (reader INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE,
  created TEXT NOT NULL);
CREATE TABLE sequence (reader INTEGER NOT NULL REFERENCES readers, seq INTEGER NOT NULL,
  item INTEGER NOT NULL REFERENCES items, PRIMARY KEY (reader, seq));
CREATE TABLE model (  -- the attacked model on each case, from the run's GAN cell (meta model_cell)
  case_id TEXT PRIMARY KEY, correct INTEGER NOT NULL, fooled INTEGER NOT NULL);
CREATE TABLE answers (
  reader INTEGER NOT NULL REFERENCES readers, seq INTEGER NOT NULL, item INTEGER NOT NULL REFERENCES items,
  call INTEGER NOT NULL CHECK (call IN (0, 1)),  -- 0: real, 1: fake
  confidence INTEGER NOT NULL CHECK (confidence BETWEEN 1 AND 5),  -- 1: a guess ... 5: certain
  x REAL, y REAL,  -- where the reader marked the edit, in image pixels (NULL: no mark)
  ms INTEGER, received TEXT NOT NULL, PRIMARY KEY (reader, seq), UNIQUE (reader, item));
"""


def study_file(folder: Path) -> Path:
    """The study database inside a study folder; a clear error when there is none."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        raise BenchmarkError(f"--study {folder}: no {STUDY_FILE} there; create one with "
                             "`python -m benchmark reader-study create`")
    return path


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal synced on every commit, waiting on
    locks up to 30 s."""
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA busy_timeout=30000")
    con.execute("PRAGMA foreign_keys=ON")
    return con


def create_schema(con: sqlite3.Connection, meta: dict) -> None:
    """Create the tables of a new study and store its facts (JSON values) in meta."""
    con.executescript(_SCHEMA)
    con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])


def read_meta(con: sqlite3.Connection) -> dict:
    """The study's facts: name, source run, fakes artifact, design, the organiser token's hash, ..."""
    return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
