"""The study's web server (Starlette, served by uvicorn): reading pages, images, answers and the organiser's page.

What a reader's browser receives never says whether an image is synthetic: item tokens are random, every PNG is
encoded the same way, and the order comes from the server one image at a time.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from benchmark.reader_study.answers import (
    AnswerError,
    next_item,
    parse_answer,
    progress,
    reader_by_token,
    record_answer,
)
from benchmark.reader_study.db import connect, read_meta, study_file
from benchmark.reader_study.export import answers_csv
from benchmark.reader_study.page import admin_page, reading_page, welcome_page

__all__ = ["create_app"]

_NO_STORE = {"Cache-Control": "no-store"}


def create_app(folder: Path) -> Starlette:
    """The ASGI app of the study in folder (its study.sqlite must exist)."""
    path = study_file(folder)
    with _open(path) as con:
        meta = read_meta(con)
    name, admin = meta["name"], meta["admin_token"]
    write_lock = threading.Lock()

    def reader_or_404(con: sqlite3.Connection, token: str) -> tuple[int, str]:
        found = reader_by_token(con, token)
        if found is None:
            raise AnswerError(404, "unknown reader link; ask the study's organiser for yours")
        return found

    def home(request: Request) -> Response:
        return HTMLResponse(welcome_page(name))

    def read(request: Request) -> Response:
        with _open(path) as con:
            found = reader_by_token(con, request.path_params["token"])
        if found is None:
            return HTMLResponse("<p>Unknown reader link; ask the study's organiser for yours.</p>", 404)
        return HTMLResponse(reading_page(name, found[1], request.path_params["token"]), headers=_NO_STORE)

    def next_(request: Request) -> Response:
        with _open(path) as con:
            reader, _ = reader_or_404(con, request.path_params["token"])
            return JSONResponse(next_item(con, reader), headers=_NO_STORE)

    async def answer(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "the body is not JSON; send a JSON object"}, 400)
        return await run_in_threadpool(answer_sync, request.path_params["token"], body)

    def answer_sync(token: str, body: object) -> Response:
        parsed = parse_answer(body)
        with _open(path) as con:
            reader, _ = reader_or_404(con, token)
            with write_lock:  # one writer at a time in this process: no waits in SQLite's busy handler
                recorded = record_answer(con, reader, parsed)
            return JSONResponse({"recorded": recorded, "next": next_item(con, reader)}, headers=_NO_STORE)

    def image(request: Request) -> Response:
        with _open(path) as con:
            row = con.execute("SELECT png FROM items WHERE token = ?", (request.path_params["item"],)).fetchone()
        if row is None:
            return PlainTextResponse("no such image", 404)
        return Response(bytes(row[0]), media_type="image/png", headers=_NO_STORE)

    def organiser(request: Request) -> Response:
        if not secrets.compare_digest(request.path_params["token"], admin):
            return PlainTextResponse("unknown organiser link", 404)
        with _open(path) as con:
            counts = dict(con.execute("SELECT CASE synthetic WHEN 1 THEN 'synthetic' ELSE 'original' END, COUNT(*) "
                                      "FROM items GROUP BY synthetic").fetchall())
            page = admin_page(name, meta, progress(con), {"original": 0, "synthetic": 0, **counts},
                              str(request.base_url).rstrip("/"))
        return HTMLResponse(page, headers=_NO_STORE)

    def export(request: Request) -> Response:
        if not secrets.compare_digest(request.path_params["token"], admin):
            return PlainTextResponse("unknown organiser link", 404)
        with _open(path) as con:
            return PlainTextResponse(answers_csv(con), media_type="text/csv", headers=_NO_STORE)

    async def errors(request: Request, exc: AnswerError) -> Response:
        return JSONResponse({"error": str(exc)}, exc.status)

    routes = [Route("/", home), Route("/read/{token}", read), Route("/api/{token}/next", next_),
              Route("/api/{token}/answers", answer, methods=["POST"]), Route("/image/{item}.png", image),
              Route("/admin/{token}", organiser), Route("/admin/{token}/answers.csv", export)]
    return Starlette(routes=routes, exception_handlers={AnswerError: errors})


@contextmanager
def _open(path: Path) -> Iterator[sqlite3.Connection]:
    con = connect(path)
    try:
        yield con
    finally:
        con.close()
