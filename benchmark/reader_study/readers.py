"""Readers and the organiser: unguessable tokens (stored as SHA-256 hashes, compared in constant time) and each
reader's reading order, drawn when the reader is added."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.reader_study.db import connect, read_meta, study_file

__all__ = ["add_reader", "admin_ok", "hash_token", "reader_by_token", "reading_order"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}")


def hash_token(token: str) -> str:
    """The SHA-256 hex digest a token is stored as."""
    return hashlib.sha256(token.encode()).hexdigest()


def admin_ok(meta: dict, token: str) -> bool:
    """Whether token is the study's organiser token (constant-time comparison of the hashes)."""
    return hmac.compare_digest(hash_token(token), meta["admin_token_hash"])


def reader_by_token(con: sqlite3.Connection, token: str) -> tuple[int, str] | None:
    """(reader id, pseudonym) of a reader link's token, or None; the stored hash is checked in constant time."""
    digest = hash_token(token)
    row = con.execute("SELECT reader, name, token_hash FROM readers WHERE token_hash = ?", (digest,)).fetchone()
    if row is None or not hmac.compare_digest(row[2], digest):
        return None
    return int(row[0]), row[1]


def reading_order(con: sqlite3.Connection, meta: dict, reader: int, rng: np.random.Generator) -> list[int]:
    """One reader's order of item ids. Crossed: every item, shuffled. Counterbalanced: each case once, as its fake
    when it is one of meta's odd_reader_fakes and the reader's id is odd or it is not and the id is even; shuffled.
    Pairs: the cases split at random into halves A and B; first A's originals and B's fakes, shuffled, then the other
    versions, shuffled, so that the two versions of a case are never in the same half."""
    items = con.execute("SELECT item, case_id, synthetic FROM items ORDER BY item").fetchall()
    layout = meta.get("layout", "crossed")
    if layout == "counterbalanced":
        odd = set(meta["odd_reader_fakes"])
        items = [x for x in items if x[2] == ((x[1] in odd) == (reader % 2 == 1))]
    if layout != "pairs":
        return [int(items[k][0]) for k in rng.permutation(len(items))]
    by = {(c, s): i for i, c, s in items}
    cases = sorted({c for _, c, _ in items})
    cases = [cases[k] for k in rng.permutation(len(cases))]
    a, b = cases[: len(cases) // 2], cases[len(cases) // 2:]
    first = [by[c, 0] for c in a] + [by[c, 1] for c in b]
    second = [by[c, 1] for c in a] + [by[c, 0] for c in b]
    return [int(i) for i in rng.permutation(first)] + [int(i) for i in rng.permutation(second)]


def add_reader(folder: Path, name: str) -> str:
    """Add a reader called name (a pseudonym, never a patient's or reader's identifier from a record) with their own
    reading order; return their token (stored only as a hash: the printed link is the only copy)."""
    if not _NAME.fullmatch(name):
        raise BenchmarkError(f"reader name {name!r}: use 1-40 letters, digits, spaces, dots, dashes or underscores, "
                             "starting with a letter or digit")
    con = connect(study_file(folder))
    try:
        meta = read_meta(con)
        token = secrets.token_urlsafe(32)
        con.execute("BEGIN IMMEDIATE")
        try:
            if con.execute("SELECT 1 FROM readers WHERE name = ?", (name,)).fetchone():
                raise BenchmarkError(f"reader name {name!r}: the study already has a reader of that name; pick another")
            cur = con.execute("INSERT INTO readers (name, token_hash, created) VALUES (?, ?, ?)",
                              (name, hash_token(token), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
            order = reading_order(con, meta, cur.lastrowid, np.random.default_rng([meta["seed"], cur.lastrowid]))
            con.executemany("INSERT INTO sequence VALUES (?, ?, ?)",
                            [(cur.lastrowid, s, item) for s, item in enumerate(order)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    return token
