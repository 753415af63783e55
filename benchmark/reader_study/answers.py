"""Reading and answering: the next image of a reader's order, and recording one answer in order, in one transaction.

An answer is a call (0 real, 1 fake) with a confidence 1..5 (1 a guess, 5 certain) and, optionally, where the reader
thinks the edit is (x, y in the image's own pixels). Answer number seq is accepted only when the reader has exactly seq
answers and it names the image at position seq. A repeat of a recorded answer (a double click, a retry after a lost
reply) is accepted and recorded once.
"""
from __future__ import annotations

import math
import sqlite3
import time

__all__ = ["AnswerError", "next_item", "parse_answer", "progress", "record_answer"]

_FIELDS = "seq, item, call, confidence and optionally x, y (where the edit is) and ms"


class AnswerError(Exception):
    """A refused answer: status 400 (bad field), 404 (unknown image or reader) or 409 (out of order); the message
    is one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int(body: dict, name: str, allowed: range, what: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value not in allowed:
        raise AnswerError(400, f"field '{name}': send {what}")
    return value


def parse_answer(body: object) -> dict:
    """The checked fields of a posted JSON body; AnswerError(400) naming the first bad field."""
    if not isinstance(body, dict):
        raise AnswerError(400, f"the body must be a JSON object with {_FIELDS}")
    unknown = sorted(set(body) - {"seq", "item", "call", "confidence", "x", "y", "ms"})
    if unknown:
        raise AnswerError(400, f"field '{unknown[0]}' is not part of an answer; send {_FIELDS}")
    out = {"seq": _int(body, "seq", range(0, 1_000_000), "the position of the answered image (an integer >= 0)")}
    if not isinstance(body.get("item"), str) or not 0 < len(body["item"]) <= 64:
        raise AnswerError(400, "field 'item': send the item token of the answered image")
    out["item"] = body["item"]
    out["call"] = _int(body, "call", range(2), "0 (real) or 1 (fake)")
    out["confidence"] = _int(body, "confidence", range(1, 6), "an integer from 1 (a guess) to 5 (certain)")
    has = [body.get(k) is not None for k in ("x", "y")]
    if any(has) and not all(has):
        raise AnswerError(400, f"field '{'y' if has[0] else 'x'}': send both x and y of the mark, or neither")
    for k in ("x", "y"):
        v = body.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise AnswerError(400, f"field '{k}': send the mark's position in image pixels (a number) or leave it out")
        out[k] = None if v is None else float(v)
    ms = body.get("ms")
    out["ms"] = None if ms is None else _int(body, "ms", range(0, 86_400_000), "the reading time in milliseconds "
                                                                                "(an integer >= 0) or leave it out")
    return out


def next_item(con: sqlite3.Connection, reader: int) -> dict:
    """{seq, total, item, width, height} of the reader's next image, or {seq, total, done: true} when every image
    is answered. Nothing in it says whether the image is synthetic."""
    total = con.execute("SELECT COUNT(*) FROM sequence WHERE reader = ?", (reader,)).fetchone()[0]
    done = con.execute("SELECT COUNT(*) FROM answers WHERE reader = ?", (reader,)).fetchone()[0]
    if done >= total:
        return {"seq": done, "total": total, "done": True}
    token, width, height = con.execute("SELECT i.token, i.width, i.height FROM sequence s JOIN items i "
                                       "ON i.item = s.item WHERE s.reader = ? AND s.seq = ?", (reader, done)).fetchone()
    return {"seq": done, "total": total, "item": token, "width": width, "height": height}


def record_answer(con: sqlite3.Connection, reader: int, answer: dict) -> bool:
    """Store a parsed answer in the reader's order, in one transaction; False when it repeats the recorded one;
    AnswerError 404 (no such image) / 400 (mark outside the image) / 409 (out of order, another image, changed)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        found = con.execute("SELECT item, width, height FROM items WHERE token = ?", (answer["item"],)).fetchone()
        if found is None:
            raise AnswerError(404, "field 'item': no image of this study has that token; reload the page")
        item, width, height = found
        if answer["x"] is not None and not (0 <= answer["x"] <= width and 0 <= answer["y"] <= height):
            raise AnswerError(400, f"fields 'x', 'y': the mark must lie inside the image (0..{width}, 0..{height})")
        done = con.execute("SELECT COUNT(*) FROM answers WHERE reader = ?", (reader,)).fetchone()[0]
        row = con.execute("SELECT item FROM sequence WHERE reader = ? AND seq = ?", (reader, answer["seq"])).fetchone()
        if row is None:
            raise AnswerError(409, f"answer {answer['seq']}: this reader has no image at that position "
                                   f"({done} answered); reload the page")
        if row[0] != item:
            raise AnswerError(409, f"answer {answer['seq']}: the item is not the one at that position; reload the "
                                   "page")
        values = (answer["call"], answer["confidence"], answer["x"], answer["y"])
        if answer["seq"] < done:
            kept = con.execute("SELECT call, confidence, x, y FROM answers WHERE reader = ? AND seq = ?",
                               (reader, answer["seq"])).fetchone()
            if tuple(kept) == values:
                con.execute("COMMIT")
                return False
            raise AnswerError(409, f"answer {answer['seq']} is already recorded with other values; answers cannot "
                                   "be changed")
        if answer["seq"] > done:
            raise AnswerError(409, f"answer {answer['seq']} came before answer {done}; reload the page")
        con.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (reader, answer["seq"], item, *values, answer["ms"],
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        con.execute("COMMIT")
        return True
    except BaseException:
        con.execute("ROLLBACK")
        raise


def progress(con: sqlite3.Connection) -> list[dict]:
    """Per reader: id, pseudonym, answered and total."""
    rows = con.execute("SELECT r.reader, r.name, (SELECT COUNT(*) FROM answers a WHERE a.reader = r.reader),"
                       " (SELECT COUNT(*) FROM sequence s WHERE s.reader = r.reader) FROM readers r ORDER BY r.reader")
    return [{"reader": r, "name": n, "answered": a, "total": tot} for r, n, a, tot in rows]
