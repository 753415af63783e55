"""Shared pieces of the reader study tests: a tiny real run with GAN fakes, a study made from it by the CLI, the
real server (`python -m benchmark reader-study serve`) in a subprocess, and HTTP calls with the standard library."""
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


def tiny_gan_run(root: Path) -> Path:
    """Run the tiny matrix with the gan attack under root (data, training, GAN, fakes); return its config file."""
    raw = tiny_raw(root)
    raw["attacks"] = [{"name": "gan", "options": TINY_GAN}]
    raw["training"] = {"epochs": 1, "batch_size": 16, "lr": 0.003}
    config = write_toml(root / "c.toml", raw)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    return config


def make_study(config: Path, out: Path, cases: int = 8, readers: int = 3) -> Path:
    """A study folder made through the CLI from the config's latest run."""
    assert main(["reader-study", "create", "--config", str(config), "--out", str(out), "--cases", str(cases),
                 "--readers", str(readers)]) == 0
    return out


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m benchmark reader-study serve` in a subprocess; links read from what it prints."""

    def __init__(self, study: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmark", "reader-study", "serve", "--study", str(study),
                                      "--port", str(self.port)], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.readers: dict[str, str] = {}  # pseudonym -> token
        for line in self.proc.stdout:
            name, _, url = line.strip().partition(": ")
            if name == "organiser":
                self.admin = url.rsplit("/", 1)[1]
                break
            if url:
                self.readers[name] = url.rsplit("/", 1)[1]
        else:
            raise RuntimeError(f"the server exited with {self.proc.wait()} before printing its links")
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
