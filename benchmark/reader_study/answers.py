"""Reading and answering: the next item of a reader's order, and recording one answer in order, atomically.

Each reader's answers must arrive in the order the study gave them: answer number seq is accepted only when the
reader has exactly seq answers and it names the item at position seq. A repeat of the last answer (a double click, a
retry after a lost reply) is accepted once and recorded once.
"""
from __future__ import annotations

import sqlite3
import time

__all__ = ["FIELDS", "AnswerError", "next_item", "parse_answer", "progress", "reader_by_token", "record_answer"]

# field -> (allowed values, what to send)
FIELDS = {
    "cancer": ((0, 1), "0 (no cancer) or 1 (cancer)"),
    "cancer_confidence": ((1, 2, 3), "1 (low), 2 (medium) or 3 (high)"),
    "manipulated": ((0, 1), "0 (real) or 1 (manipulated)"),
    "manipulated_confidence": ((1, 2, 3), "1 (low), 2 (medium) or 3 (high)"),
}


class AnswerError(Exception):
    """A refused answer: status is 400 (bad field) or 409 (out of order); the message is one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_answer(body: object) -> dict:
    """The checked answer fields of a posted JSON body; AnswerError(400) naming the first bad field."""
    if not isinstance(body, dict):
        raise AnswerError(400, "the body must be a JSON object with seq, item, cancer, cancer_confidence, "
                               "manipulated and manipulated_confidence")
    out = {}
    seq = body.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise AnswerError(400, "field 'seq': send the position of the answered image (an integer >= 0)")
    out["seq"] = seq
    if not isinstance(body.get("item"), str) or not body["item"]:
        raise AnswerError(400, "field 'item': send the item token of the answered image")
    out["item"] = body["item"]
    for name, (allowed, what) in FIELDS.items():
        value = body.get(name)
        if isinstance(value, bool) or value not in allowed:
            raise AnswerError(400, f"field '{name}': send {what}")
        out[name] = int(value)
    ms = body.get("ms")
    if ms is not None and (not isinstance(ms, int) or isinstance(ms, bool) or ms < 0):
        raise AnswerError(400, "field 'ms': send the reading time in milliseconds (an integer >= 0) or leave it out")
    out["ms"] = ms
    return out


def reader_by_token(con: sqlite3.Connection, token: str) -> tuple[int, str] | None:
    """(reader id, pseudonym) of a reader link's token, or None."""
    row = con.execute("SELECT reader, name FROM readers WHERE token = ?", (token,)).fetchone()
    return (int(row[0]), row[1]) if row else None


def next_item(con: sqlite3.Connection, reader: int) -> dict:
    """{seq, total, item} of the reader's next image, or {seq, total, done: true} when every image is answered."""
    total = con.execute("SELECT COUNT(*) FROM sequence WHERE reader = ?", (reader,)).fetchone()[0]
    done = con.execute("SELECT COUNT(*) FROM answers WHERE reader = ?", (reader,)).fetchone()[0]
    if done >= total:
        return {"seq": done, "total": total, "done": True}
    token = con.execute("SELECT i.token FROM sequence s JOIN items i ON i.item = s.item "
                        "WHERE s.reader = ? AND s.seq = ?", (reader, done)).fetchone()[0]
    return {"seq": done, "total": total, "item": token}


def record_answer(con: sqlite3.Connection, reader: int, answer: dict) -> bool:
    """Store a parsed answer in the reader's order; False when it repeats the recorded one; AnswerError(409)
    when it is out of order or names another item."""
    con.execute("BEGIN IMMEDIATE")
    try:
        done = con.execute("SELECT COUNT(*) FROM answers WHERE reader = ?", (reader,)).fetchone()[0]
        row = con.execute("SELECT s.item, i.token FROM sequence s JOIN items i ON i.item = s.item "
                          "WHERE s.reader = ? AND s.seq = ?", (reader, answer["seq"])).fetchone()
        if row is None:
            raise AnswerError(409, f"answer {answer['seq']}: this reader has no image at that position "
                                   f"({done} answered); reload the page")
        if row[1] != answer["item"]:
            raise AnswerError(409, f"answer {answer['seq']}: the item is not the one at that position; reload the "
                                   "page")
        values = tuple(answer[k] for k in FIELDS)
        if answer["seq"] < done:
            kept = con.execute("SELECT cancer, cancer_confidence, manipulated, manipulated_confidence FROM answers "
                               "WHERE reader = ? AND seq = ?", (reader, answer["seq"])).fetchone()
            if tuple(kept) == values:
                con.execute("COMMIT")
                return False
            raise AnswerError(409, f"answer {answer['seq']} is already recorded with other values; answers cannot "
                                   "be changed")
        if answer["seq"] > done:
            raise AnswerError(409, f"answer {answer['seq']} came before answer {done}; reload the page")
        con.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (reader, answer["seq"], row[0], *values, answer["ms"],
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        con.execute("COMMIT")
        return True
    except BaseException:
        con.execute("ROLLBACK")
        raise


def progress(con: sqlite3.Connection) -> list[dict]:
    """Per reader: pseudonym, link token, answered and total."""
    rows = con.execute("SELECT r.reader, r.name, r.token, (SELECT COUNT(*) FROM answers a WHERE a.reader = r.reader),"
                       " (SELECT COUNT(*) FROM sequence s WHERE s.reader = r.reader) FROM readers r ORDER BY r.reader")
    return [{"reader": r, "name": n, "token": t, "answered": a, "total": tot} for r, n, t, a, tot in rows]
