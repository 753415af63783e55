"""Shared pieces of the reader study tests: a tiny real run with GAN fakes, a study made from it by the CLI (readers
added with `add-reader`, links read from what it prints), the real server (`python -m benchmark reader-study serve`)
in a subprocess, and HTTP calls with the standard library."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import tiny_raw, write_toml
from test_frontier import TINY_GAN  # the tiny GAN of the frontier tests: 2-level U-Net, a few steps

from benchmark.cli import main

ROOT = Path(__file__).resolve().parent.parent


def tiny_gan_run(root: Path, count: int = 96) -> Path:
    """Run the tiny matrix with the gan attack on count images under root (data, training, GAN, fakes); return its
    config file."""
    raw = tiny_raw(root)
    raw["dataset"]["options"]["count"] = count
    raw["attacks"] = [{"name": "gan", "options": TINY_GAN}]
    raw["training"] = {"epochs": 1, "batch_size": 16, "lr": 0.003}
    config = write_toml(root / "c.toml", raw)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    return config


class Study:
    """A study folder made through the CLI, with its organiser token and its readers' tokens (pseudonym -> token)."""

    def __init__(self, folder: Path, admin: str, readers: dict[str, str]) -> None:
        self.folder, self.admin, self.readers = folder, admin, readers


def _printed(capsys: object, prefix: str) -> str:
    """The token at the end of the printed line that starts with prefix."""
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith(prefix))
    return line.rsplit("/", 1)[1]


def make_study(config: Path, out: Path, capsys: object, cases: int = 8, readers: int = 3,
               extra: tuple[str, ...] = ()) -> Study:
    """A study made through the CLI from the config's latest run, with readers reader-1..reader-N."""
    capsys.readouterr()
    assert main(["reader-study", "create", "--config", str(config), "--out", str(out), "--cases", str(cases),
                 *extra]) == 0
    admin = _printed(capsys, "organiser link")
    tokens = {}
    for k in range(readers):
        assert main(["reader-study", "add-reader", f"reader-{k + 1}", "--study", str(out)]) == 0
        tokens[f"reader-{k + 1}"] = _printed(capsys, f"reader-{k + 1}: ")
    return Study(out, admin, tokens)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m benchmark reader-study serve` in a subprocess on a made study; HTTP with the standard library."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.admin, self.readers = study.admin, study.readers
        self.port = free_port()
        self._start()

    def _start(self) -> None:
        """Start the server process and wait until it accepts connections."""
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmark", "reader-study", "serve", "--study",
                                      str(self.study.folder), "--port", str(self.port)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.banner = self.proc.stdout.readline()  # what it says on start: where it listens
        self.log: list[str] = []  # what the server prints later (warnings, errors); read so that the pipe never fills
        self._drain = threading.Thread(target=lambda: self.log.extend(self.proc.stdout), daemon=True)
        self._drain.start()
        deadline = time.monotonic() + 60
        while True:  # wait until uvicorn accepts connections
            try:
                urllib.request.urlopen(self.base + "/", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)

    def get(self, path: str) -> tuple[int, bytes, dict]:
        """(status, body, headers) of a GET."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def post(self, path: str, body: object) -> tuple[int, dict]:
        """(status, JSON reply) of a POST with a JSON body (bytes are sent as they are)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def kill(self) -> None:
        """SIGKILL the server process (no shutdown of any kind) and wait for it to be gone."""
        self.proc.kill()
        self.proc.wait()
        self._drain.join(timeout=10)
        self.proc.stdout.close()

    def restart(self) -> None:
        """Start the server again on the same study and port."""
        self._start()

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(timeout=10)
        self.proc.stdout.close()
