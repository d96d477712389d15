"""`manage.py serve`: the web server (gunicorn) and a django-q2 cluster, together.

Both run as child processes. Ctrl-C (SIGINT) or SIGTERM stops both gracefully; if either one
dies, the other is stopped too and serve exits non-zero, so a supervisor sees the failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dimeconnect.startup import refuse_unsafe_start

STOP_GRACE_S = 20
# gunicorn closes an idle kept-alive connection after this long (its own default is 2 s). A
# proxy or client that reuses a connection just as it closes gets an error, which nginx does
# not retry for a POST; so the server must keep connections longer than any proxy in front
# keeps them idle (nginx's upstream keepalive_timeout, 60 s by default; docs/DEPLOYMENT.md).
KEEP_ALIVE_S = 75


class Command(BaseCommand):
    help = "Start the web server and a django-q2 cluster together; Ctrl-C stops both."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port to listen on.")
        parser.add_argument("--workers", type=int, default=2, help="Web worker processes.")
        parser.add_argument("--threads", type=int, default=4, help="Threads per web worker.")
        parser.add_argument(
            "--keep-alive", type=int, default=KEEP_ALIVE_S, dest="keep_alive",
            help=f"Seconds an idle kept-alive connection stays open ({KEEP_ALIVE_S}); keep it "
            "longer than the reverse proxy's upstream keepalive_timeout.",
        )
        parser.add_argument(
            "--no-cluster", action="store_true", help="Web server only (run qcluster elsewhere)."
        )

    def handle(self, *args: Any, bind: str, workers: int, threads: int, keep_alive: int,
               no_cluster: bool, **options: Any) -> None:
        if min(workers, threads, keep_alive) < 1:
            raise CommandError("--workers, --threads and --keep-alive must be at least 1.")
        refuse_unsafe_start()
        call_command("collectstatic", interactive=False, verbosity=0)
        env = dict(os.environ)
        cwd = str(settings.BASE_DIR)
        commands = {
            "web": [
                sys.executable, "-m", "gunicorn", "dimeconnect.wsgi:application",
                "--bind", bind, "--workers", str(workers), "--threads", str(threads),
                "--keep-alive", str(keep_alive),
                "--access-logfile", "-", "--graceful-timeout", str(STOP_GRACE_S - 5),
                "--no-control-socket",
            ],
        }
        if not no_cluster:
            commands["tasks"] = [sys.executable, "-m", "django", "qcluster"]
        children = {
            name: subprocess.Popen(command, cwd=cwd, env=env)
            for name, command in commands.items()
        }
        broker = "redis" if settings.REDIS_URL else "the database (ORM broker)"
        self.stdout.write(
            f"DimeConnect on http://{bind}/admin/ — web server"
            + ("" if no_cluster else f" and background tasks via {broker}")
            + "; Ctrl-C stops."
        )
        stopping = False

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            failed = self._watch(children, lambda: stopping)
        finally:
            self._stop(children)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed:
            raise CommandError(f"The {failed} process stopped unexpectedly; stopped the rest.")
        self.stdout.write("Stopped.")

    def _watch(self, children: dict[str, subprocess.Popen[bytes]], stopping: Any) -> str | None:
        """Wait until asked to stop (returns None) or a child exits (returns its name)."""
        while not stopping():
            for name, child in children.items():
                if child.poll() is not None:
                    return name
            time.sleep(0.2)
        return None

    def _stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
