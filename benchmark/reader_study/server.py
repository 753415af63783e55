"""The study's web server (Starlette, served by uvicorn): reading pages, images, answers and the organiser's pages.

What a reader's browser receives never says whether an image is synthetic: item tokens are random, every PNG is
encoded the same way, and the order comes from the server one image at a time. A reader token opens only its own
reading page, its own images and its own answer endpoint; the organiser's pages need the organiser token.
"""
from __future__ import annotations

import json
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

from benchmark.metrics import to_jsonable
from benchmark.reader_study.answers import AnswerError, next_item, parse_answer, progress, record_answer
from benchmark.reader_study.db import connect, read_meta, study_file
from benchmark.reader_study.export import answers_csv
from benchmark.reader_study.page import admin_page, reading_page, welcome_page
from benchmark.reader_study.readers import admin_ok, reader_by_token
from benchmark.reader_study.stats.analysis import analyse

__all__ = ["MAX_BODY", "create_app"]

MAX_BODY = 4096  # bytes of an answer's JSON body; an answer is about 150
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def create_app(folder: Path) -> Starlette:
    """The ASGI app of the study in folder (its study.sqlite must exist)."""
    path = study_file(folder)
    with _open(path) as con:
        meta = read_meta(con)
    name = meta["name"]
    write_lock = threading.Lock()

    def reader_or_404(con: sqlite3.Connection, token: str) -> int:
        found = reader_by_token(con, token)
        if found is None:
            raise AnswerError(404, "unknown reader link; ask the study's organiser for yours")
        return found[0]

    def organiser_or_404(request: Request) -> None:
        if not admin_ok(meta, request.path_params["token"]):
            raise AnswerError(404, "unknown organiser link")

    def home(request: Request) -> Response:
        return HTMLResponse(welcome_page(name), headers=_HEADERS)

    def read(request: Request) -> Response:
        with _open(path) as con:
            found = reader_by_token(con, request.path_params["token"])
        if found is None:
            return HTMLResponse("<p>Unknown reader link; ask the study's organiser for yours.</p>", 404)
        return HTMLResponse(reading_page(name, found[1], request.path_params["token"]), headers=_HEADERS)

    def next_(request: Request) -> Response:
        with _open(path) as con:
            return JSONResponse(next_item(con, reader_or_404(con, request.path_params["token"])), headers=_HEADERS)

    async def answer(request: Request) -> Response:
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            raise AnswerError(413, f"the body is over {MAX_BODY} bytes; send one answer as a small JSON object")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise AnswerError(413, f"the body is over {MAX_BODY} bytes; send one answer as a small JSON object")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise AnswerError(400, "the body is not JSON; send a JSON object") from None
        return await run_in_threadpool(answer_sync, request.path_params["token"], body)

    def answer_sync(token: str, body: object) -> Response:
        with _open(path) as con:
            reader = reader_or_404(con, token)
            parsed = parse_answer(body)
            with write_lock:  # one writer at a time in this process: no waits in SQLite's busy handler
                recorded = record_answer(con, reader, parsed)
            return JSONResponse({"recorded": recorded, "next": next_item(con, reader)}, headers=_HEADERS)

    def image(request: Request) -> Response:
        with _open(path) as con:
            reader = reader_or_404(con, request.path_params["token"])
            row = con.execute("SELECT i.png FROM items i JOIN sequence s ON s.item = i.item WHERE i.token = ? AND "
                              "s.reader = ?", (request.path_params["item"], reader)).fetchone()
        if row is None:
            return PlainTextResponse("no such image in your reading list", 404, headers=_HEADERS)
        return Response(bytes(row[0]), media_type="image/png", headers=_HEADERS)

    def organiser(request: Request) -> Response:
        organiser_or_404(request)
        with _open(path) as con:
            counts = dict(con.execute("SELECT CASE synthetic WHEN 1 THEN 'synthetic' ELSE 'original' END, COUNT(*) "
                                      "FROM items GROUP BY synthetic").fetchall())
            page = admin_page(name, meta, progress(con), {"original": 0, "synthetic": 0, **counts},
                              str(request.url).rstrip("/"), to_jsonable(analyse(con)))
        return HTMLResponse(page, headers=_HEADERS)

    def export(request: Request) -> Response:
        organiser_or_404(request)
        with _open(path) as con:
            return PlainTextResponse(answers_csv(con), media_type="text/csv", headers=_HEADERS)

    def report(request: Request) -> Response:
        organiser_or_404(request)
        with _open(path) as con:
            return JSONResponse(to_jsonable(analyse(con)), headers=_HEADERS)

    async def errors(request: Request, exc: AnswerError) -> Response:
        return JSONResponse({"error": str(exc)}, exc.status, headers=_HEADERS)

    routes = [Route("/", home), Route("/read/{token}", read), Route("/read/{token}/image/{item}.png", image),
              Route("/api/{token}/next", next_), Route("/api/{token}/answers", answer, methods=["POST"]),
              Route("/admin/{token}", organiser), Route("/admin/{token}/answers.csv", export),
              Route("/admin/{token}/report.json", report)]
    return Starlette(routes=routes, exception_handlers={AnswerError: errors})


@contextmanager
def _open(path: Path) -> Iterator[sqlite3.Connection]:
    con = connect(path)
    try:
        yield con
    finally:
        con.close()
