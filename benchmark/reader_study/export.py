"""Exports of a study: every answer as a row, with whether the image read was synthetic (organiser only)."""
from __future__ import annotations

import csv
import io
import sqlite3

__all__ = ["ANSWER_COLUMNS", "answer_rows", "answers_csv"]

ANSWER_COLUMNS = ("reader", "seq", "case_id", "synthetic", "image", "truth", "call", "confidence", "rating", "x", "y",
                  "ms", "received")


def answer_rows(con: sqlite3.Connection) -> list[dict]:
    """Every recorded answer, in reader then reading order; `synthetic` is yes for the GAN's images, `call` is real
    or fake, `rating` the 10-point scale of the ROC analysis."""
    rows = con.execute(
        "SELECT r.name, a.seq, i.case_id, i.synthetic, i.direction, i.truth, a.call, a.confidence, a.x, a.y, a.ms, "
        "a.received FROM answers a JOIN readers r USING (reader) JOIN items i ON i.item = a.item "
        "ORDER BY r.reader, a.seq")
    out = []
    for name, seq, case, synthetic, direction, truth, call, confidence, *rest in rows:
        image = f"synthetic: lesion GAN fake, {direction}" if synthetic else "original"
        rating = 5 + confidence if call else 6 - confidence
        out.append(dict(zip(ANSWER_COLUMNS, (name, seq, case, "yes" if synthetic else "no", image, truth,
                                             "fake" if call else "real", confidence, rating, *rest))))
    return out


def answers_csv(con: sqlite3.Connection) -> str:
    """answer_rows as CSV text with a header."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ANSWER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(answer_rows(con))
    return buffer.getvalue()
