"""End-to-end harness: DimeConnect in real processes, talking to loopback fakes.

An `App` is one throw-away deployment, built the way an operator builds one:

    with deployed(workdir, connectors=[...], source_apps=["BCPROD"]) as app:
        # a fresh database, `migrate`, `apply_connectors FILE.json`, `create_api_client`,
        # `serve --no-cluster` and `qcluster` running
        app.accept_events([event("create", guid, "BCPROD")])      # HTTP, Bearer key
        app.wait_settled("BCPROD", 1, timeout=30)                 # polls the app's database
    # every process stopped (killed if need be), the database dropped

Every process gets the same environment: DATABASE_URL of the fresh database (tests/e2e/
backends.py), REDIS_URL passed through when set, a run name that namespaces what the app keeps
in Redis (tests/e2e/settings.py), a small Q_WORKERS. Each process runs in its own process group
with its output in a log file in the workdir; `App.report()` returns their tails, which the
e2e conftest attaches to a failed test's report. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from cryptography.fernet import Fernet

from tests.support import web_client

from .backends import Database, delete_redis_keys, fresh_database, redis_url

ROOT = Path(__file__).resolve().parents[2]
EVENTS_PATH = "/api/v1/appointments/events/"
STOP_GRACE_S = 10.0
COMMAND_TIMEOUT_S = 120.0
LOG_TAIL_LINES = 120
SETTLED = ("succeeded", "failed", "cancelled")

T = TypeVar("T")


class HarnessError(AssertionError):
    """A step of the harness failed: a command exited non-zero, a process died, a wait ran
    out. An AssertionError, so pytest reports it as the test's failure, with this message."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T], *, timeout: float, what: str,
               interval: float = 0.1, check: Callable[[], None] | None = None) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Raises HarnessError naming `what` and the last value seen once `timeout` seconds have
    passed. `check` runs before every poll and may raise to stop early (a process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"{what}: not within {timeout:g} s (last seen: {value!r})")
        time.sleep(interval)


# --- Processes ----------------------------------------------------------------------------


@dataclass(repr=False)
class Service:
    """A started process, leader of its own process group, its output in `log`."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    expected_down: bool = False  # stopped or killed on purpose

    def __repr__(self) -> str:
        return f"<Service {self.name} pid {self.pid}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, nothing gets to clean up or finish."""
        self.expected_down = True
        _signal_group(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM the leader (serve and qcluster stop their children themselves); once it is
        gone, or after `grace` seconds, SIGKILL whatever is left of the group."""
        self.expected_down = True
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)
        if self.alive():
            self.popen.wait(timeout=10)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


# --- The app ------------------------------------------------------------------------------


class App:
    """One deployment of DimeConnect in real processes (see the module docstring)."""

    def __init__(self, workdir: Path, *, workers: int = 2, database: Database | None = None,
                 redis: str | None = None) -> None:
        """`database` (default: fresh_database) and `redis` (default: REDIS_URL as the run
        was given it; "" = the ORM broker) choose the servers; the app's processes may be
        pointed elsewhere afterwards (a proxy) through `env`."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.workers = workers
        self.database = database or fresh_database(workdir)
        self.redis = redis_url() if redis is None else redis
        self.run_name = f"e2e-{uuid.uuid4().hex[:12]}"
        self.services: list[Service] = []
        self.api_key = ""
        self.web_url = ""
        self.commands_log = workdir / "commands.log"
        self.env = self._environment()
        self._http = web_client()

    def __repr__(self) -> str:
        return f"<App {self.workdir.name} on {self.database.vendor}>"

    def _environment(self) -> dict[str, str]:
        """The suite's environment, minus what would leak into the app (a service account,
        proxies), plus this deployment's database, run name and production-like settings."""
        dropped = ("BACKOFFICE_SERVICE_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                   "http_proxy", "https_proxy", "all_proxy", "REDIS_URL")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        if self.redis:
            env["REDIS_URL"] = self.redis
        env.update(
            DJANGO_SETTINGS_MODULE="tests.e2e.settings",
            E2E_RUN_NAME=self.run_name,
            DATABASE_URL=self.database.url,
            DIMECONNECT_ENV_FILE="",
            DEBUG="False",
            SECRET_KEY=f"e2e-{uuid.uuid4().hex}{uuid.uuid4().hex}",
            FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            ALLOWED_HOSTS="127.0.0.1",
            STATIC_ROOT=str(self.workdir / "static"),
            STATICFILES_MANIFEST="False",
            Q_WORKERS=str(self.workers),
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        return env

    # -- commands ------------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = COMMAND_TIMEOUT_S,
               log_output: bool = True) -> str:
        """Run `manage.py ARGS` in the app's environment and return its stdout.

        Raises HarnessError with the command's output when it exits non-zero or times out.
        The command (and, unless `log_output` is off, its output) goes to commands.log.
        """
        shown = " ".join(args)[:300]
        try:
            result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT,
                                    env=self.env, capture_output=True, text=True,
                                    timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"manage.py {shown}: still running after {timeout:g} s\n"
                               f"{exc.stdout or ''}{exc.stderr or ''}") from None
        with self.commands_log.open("a") as log:
            output = result.stdout if log_output else "(output not logged)\n"
            log.write(f"$ manage.py {shown}  -> exit {result.returncode}\n"
                      f"{output}{result.stderr}\n")
        if result.returncode != 0:
            raise HarnessError(f"manage.py {shown} exited {result.returncode}:\n"
                               f"{result.stdout}\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> Any:
        """Run Python inside the app (`manage.py shell -c`). The code prints one JSON value on
        its last line; that value is returned."""
        lines = self.manage("shell", "--no-imports", "-c", code).strip().splitlines()
        if not lines:
            raise HarnessError(f"shell code printed nothing:\n{code}")
        return json.loads(lines[-1])

    def setup(self, *, connectors: list[dict[str, Any]], source_apps: Iterable[str]) -> None:
        """Create and migrate the database, apply the connectors, create the API client."""
        self.database.create()
        self.manage("migrate", "--noinput", "-v0")
        self.apply_connectors(connectors)
        self.api_key = self.create_api_client("E2E back office", source_apps)

    def apply_connectors(self, entries: list[dict[str, Any]]) -> str:
        """`apply_connectors FILE.json` with these entries (DESIGN.md, Commands)."""
        path = self.workdir / f"connectors-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(entries, indent=2))
        return self.manage("apply_connectors", str(path))

    def create_api_client(self, name: str, source_apps: Iterable[str]) -> str:
        """`create_api_client NAME --source-app …`; returns the key (its output's last line)."""
        args = [arg for app in source_apps for arg in ("--source-app", app)]
        output = self.manage("create_api_client", name, *args, log_output=False)
        return output.strip().splitlines()[-1].strip()

    def run_sweeper(self) -> int:
        """One sweep now, the task the schedule runs (reclaims expired leases, queues every
        due chain head); returns how many dispatches it queued."""
        return int(self.shell("import json\nfrom connectors.tasks import sweep_dispatches\n"
                              "print(json.dumps(sweep_dispatches()))\n"))

    # -- processes -----------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> Service:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT,
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        service = Service(name, popen, log)
        self.services.append(service)
        return service

    def start_web(self, *, wait: bool = True, web_workers: int = 1) -> Service:
        """`manage.py serve --no-cluster` (gunicorn, `web_workers` processes) on a free port;
        with `wait`, returns once /healthz answers 200."""
        port = free_port()
        self.web_url = f"http://127.0.0.1:{port}"
        web = self._spawn("web", ["serve", "--no-cluster", "--bind", f"127.0.0.1:{port}",
                                  "--workers", str(web_workers)])
        if wait:
            self.wait_web_ready()
        return web

    def wait_web_ready(self, timeout: float = 60) -> None:
        def healthy() -> bool:
            try:
                return self.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        self.wait(healthy, timeout=timeout, what="the web server's /healthz")

    def start_cluster(self, *, wait: bool = True) -> Service:
        """Another `manage.py qcluster` (qcluster-1, -2, …); with `wait`, returns once it
        reports "running."."""
        number = 1 + sum(1 for s in self.services if s.name.startswith("qcluster-"))
        cluster = self._spawn(f"qcluster-{number}", ["qcluster"])
        if wait:
            self.wait_cluster_ready(cluster)
        return cluster

    def wait_cluster_ready(self, cluster: Service, timeout: float = 60) -> None:
        self.wait(lambda: "running." in cluster.text(), timeout=timeout,
                  what=f"{cluster.name} to report it is running")

    def cluster(self, number: int = 1) -> Service:
        [service] = [s for s in self.services if s.name == f"qcluster-{number}"]
        return service

    def check_running(self) -> None:
        """Raise HarnessError when a process exited that was not stopped on purpose."""
        for service in self.services:
            if not service.expected_down and not service.alive():
                raise HarnessError(f"{service.name} exited with {service.popen.returncode}:\n"
                                   f"{service.tail(40)}")

    def wait(self, condition: Callable[[], T], *, timeout: float, what: str,
             interval: float = 0.2) -> T:
        """wait_until, stopping early when one of the app's processes died."""
        return wait_until(condition, timeout=timeout, what=what, interval=interval,
                          check=self.check_running)

    # -- HTTP ----------------------------------------------------------------------------

    def get(self, path: str) -> httpx.Response:
        """GET a path of the web server, without credentials."""
        return self._http.get(self.web_url + path)

    def post_events(self, events: dict[str, Any] | list[dict[str, Any]],
                    *, key: str | None = None) -> httpx.Response:
        """POST one event or a list to the events API with the client's key (Bearer)."""
        return self._http.post(self.web_url + EVENTS_PATH, json=events,
                               headers={"Authorization": f"Bearer {key or self.api_key}"})

    def accept_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Post the events; return the answer's per-event results (event_id, status,
        dispatches). Raises HarnessError unless the answer is 202."""
        response = self.post_events(events)
        if response.status_code != 202:
            raise HarnessError(f"POST {EVENTS_PATH} answered {response.status_code}: "
                               f"{response.text[:2000]}")
        return list(response.json()["results"])

    # -- the app's database --------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows (dicts) of one read-only statement on the app's database (`%s` params)."""
        return self.database.query(sql, params)

    def dispatches(self, source_app: str | None = None) -> list[dict[str, Any]]:
        """Every dispatch (of one source app's connectors, when given), oldest first, with
        `message_id` (the webhook-id receivers see), `connector` (its name) and
        `appointment` (the guid)."""
        sql = (
            "SELECT d.id, d.uid, d.status, d.action, d.attempts, d.last_hint, d.last_error,"
            " d.last_status_code, c.name AS connector, a.guid AS appointment"
            " FROM connectors_dispatch d JOIN connectors_connector c ON c.id = d.connector_id"
            " JOIN connectors_appointment a ON a.id = d.appointment_id"
        )
        params = [] if source_app is None else [source_app]
        where = "" if source_app is None else " WHERE c.source_app = %s"
        rows = self.query(sql + where + " ORDER BY d.id", params)
        for row in rows:
            row["message_id"] = "msg_" + _uuid_hex(row["uid"])
            row["appointment"] = str(uuid.UUID(_uuid_hex(row["appointment"])))
        return rows

    def attempt_outcomes(self, dispatch_id: int) -> list[str]:
        """The outcomes in a dispatch's attempt log, in order."""
        return [row["outcome"] for row in self.query(
            "SELECT outcome FROM connectors_attempt WHERE dispatch_id = %s ORDER BY number",
            [dispatch_id])]

    def statuses(self, source_app: str | None = None) -> dict[str, int]:
        """How many dispatches are in each status."""
        counts: dict[str, int] = {}
        for row in self.dispatches(source_app):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts

    def wait_settled(self, source_app: str, count: int, *,
                     timeout: float) -> list[dict[str, Any]]:
        """Wait until the source app has `count` dispatches and none is still open (pending,
        sending, retrying); return them (as `dispatches`)."""
        def settled() -> list[dict[str, Any]] | None:
            rows = self.dispatches(source_app)
            done = len(rows) == count and all(r["status"] in SETTLED for r in rows)
            return rows if done else None

        try:
            return self.wait(settled, timeout=timeout,
                             what=f"{count} dispatches of {source_app} to settle")
        except HarnessError as exc:
            raise HarnessError(f"{exc}; now: {self.statuses(source_app)}") from None

    # -- teardown ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL of its group), drop the database and
        delete the run's Redis keys. Cleanup errors are printed, never raised."""
        for service in reversed(self.services):
            service.stop()
        self._http.close()
        if self.redis:
            delete_redis_keys(f"django_q:{self.run_name}:*", url=self.redis)
            delete_redis_keys(f"{self.run_name}:*", url=self.redis)
        try:
            self.database.drop()
        except Exception as exc:
            print(f"e2e: could not drop {self.database.url}: {exc}", file=sys.stderr)

    def report(self) -> str:
        """The tail of every process's log and of the commands run, for a failure report."""
        parts = [f"database: {self.database.url}; run name: {self.run_name}; "
                 f"broker: {'redis' if self.redis else 'orm'}; workdir: {self.workdir}"]
        for service in self.services:
            state = "running" if service.alive() else f"exited {service.popen.returncode}"
            parts.append(f"----- {service.name} (pid {service.pid}, {state}) -----\n"
                         f"{service.tail()}")
        if self.commands_log.exists():
            tail = self.commands_log.read_text(errors="replace").splitlines()[-60:]
            parts.append("----- commands -----\n" + "\n".join(tail))
        return "\n".join(parts)


def _uuid_hex(value: Any) -> str:
    """A UUID column's value as 32 hex digits (SQLite stores text, PostgreSQL a uuid)."""
    return value.hex if isinstance(value, uuid.UUID) else str(value).replace("-", "")


@contextmanager
def deployed(workdir: Path, *, connectors: list[dict[str, Any]], source_apps: Iterable[str],
             clusters: int = 1, workers: int = 2, web_workers: int = 1,
             env: dict[str, str] | None = None, database: Database | None = None,
             redis: str | None = None,
             configure: Callable[[App], None] | None = None) -> Iterator[App]:
    """A set-up App with the web server (`web_workers` gunicorn workers) and `clusters`
    qcluster processes running (started together; all ready when this yields), closed on exit
    whatever happened. `env` adds variables, e.g. a secret that a connector entry reads with
    {"env": "VAR"}; `database` and `redis` choose the servers (see App); `configure(app)` runs
    before anything is set up (e.g. to route the app's DATABASE_URL through a proxy)."""
    app = App(workdir, workers=workers, database=database, redis=redis)
    app.env.update(env or {})
    try:
        if configure is not None:
            configure(app)
        app.setup(connectors=connectors, source_apps=source_apps)
        app.start_web(wait=False, web_workers=web_workers)
        started = [app.start_cluster(wait=False) for _ in range(clusters)]
        app.wait_web_ready()
        for cluster in started:
            app.wait_cluster_ready(cluster)
        yield app
    finally:
        app.close()
