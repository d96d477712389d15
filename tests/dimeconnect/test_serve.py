"""`manage.py serve` (what `make run` starts): web server and task cluster, Ctrl-C stops both.

These are server tests: they start real processes on 127.0.0.1 and must run in CI.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_env(tmp_path) -> dict[str, str]:
    """A production-like environment on a fresh SQLite file (never the suite's database)."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DEBUG="False",
        STATICFILES_MANIFEST="True",
        STATIC_ROOT=str(tmp_path / "static"),
        ALLOWED_HOSTS="127.0.0.1",
        DIMECONNECT_ENV_FILE="",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=env, check=True, timeout=120,
    )
    return env


def wait_for(url: str, deadline_s: float) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_embedded_database_runs_in_wal_mode(app_env, tmp_path):
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_serve_runs_the_web_server_and_the_cluster_and_ctrl_c_stops_both(app_env, tmp_path):
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT, env=app_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        health = wait_for(f"http://127.0.0.1:{port}/healthz", 60)
        assert health.status_code == 200, health.text
        assert health.json()["database"]["ok"] is True
        css = httpx.get(f"http://127.0.0.1:{port}/static/admin/css/base.css", timeout=5)
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        login = httpx.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
        assert login.status_code == 200 and "DimeConnect" in login.text
        assert_idle_connection_kept(port, idle_s=3)  # gunicorn's own default drops it at 2 s
        deadline = time.monotonic() + 30
        while "running." not in Path(log.name).read_text():  # the cluster reports it is up
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.2)
    finally:
        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = server.wait(timeout=30)
    output = Path(log.name).read_text()
    assert code == 0, output
    assert "Stopped." in output
    deadline = time.monotonic() + 10
    while process_group_alive(server.pid):
        assert time.monotonic() < deadline, "a child process outlived serve"
        time.sleep(0.1)


def assert_idle_connection_kept(port: int, *, idle_s: float) -> None:
    """A kept-alive connection idle for `idle_s` still answers (a reverse proxy reuses its
    idle upstream connections, and does not retry a POST that meets a closed one)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for _ in range(2):
            connection.request("GET", "/healthz")
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
            time.sleep(idle_s)
    finally:
        connection.close()


def test_serve_refuses_production_without_an_encryption_key(app_env):
    app_env["FIELD_ENCRYPTION_KEYS"] = ""
    result = subprocess.run(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=app_env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "connectors.E002" in result.stderr


def test_serve_refuses_a_keep_alive_below_one_second(app_env):
    refused = subprocess.run(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{free_port()}",
         "--keep-alive", "0"],
        cwd=ROOT, env=app_env, capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode != 0
    assert "--workers, --threads and --keep-alive must be at least 1." in refused.stderr
