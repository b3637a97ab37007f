"""Throwaway servers on loopback for the scale-out tests: PostgreSQL, Redis, Airflow on Celery.

Every server listens on 127.0.0.1 on a free port, keeps its files in a temporary folder and is
stopped (process by process, by pid) when its context manager exits. ``.ci/services.sh``
installs the OS packages (``postgresql-15``, ``redis-server``).

PostgreSQL refuses to run as root, so as root ``initdb`` and ``postgres`` are started as the
``postgres`` OS user (created by the Debian package) through ``subprocess.Popen(user=...)``: no
``runuser``/``su`` process sits in between, so the pid we stop is the postmaster's own. Its
folder is made with ``tempfile.mkdtemp`` under /tmp rather than pytest's ``tmp_path``, whose
parents are private to root and cannot be traversed by ``postgres``.

An Airflow 3 CeleryExecutor deployment is: PostgreSQL metadata DB, Redis broker, ``airflow
api-server`` (Celery workers run tasks through its Task Execution API), ``airflow scheduler``,
``airflow dag-processor`` and N ``airflow celery worker`` processes. The pytest process reads
the metadata DB with psycopg2 only; it never imports Airflow (see ``airflow_env``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from .airflow_env import AIRFLOW_BIN, AirflowEnv, isolated_environ

log = logging.getLogger(__name__)

PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/local/bin"))
PG_OS_USER = "postgres"
PG_ROLE = "airflow"
PG_DATABASE = "airflow"

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
_POLL_S = 0.25
_LOG_TAIL_CHARS = 3000


class ServiceError(RuntimeError):
    """A test service failed to start or to answer in time; carries its log tail."""

    def __init__(self, service: str, reason: str, log_tail: str = "") -> None:
        self.service = service
        self.reason = reason
        self.log_tail = log_tail
        tail = f"\nlast output of {service}:\n{log_tail}" if log_tail else ""
        super().__init__(f"{service}: {reason}{tail}")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it is True; raise ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(_POLL_S)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


@dataclass
class ManagedProcess:
    """A server process started in its own session, its output going to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> ManagedProcess:
        """Start ``argv`` as ``name`` with stdout and stderr appended to ``log_path``."""
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                user=user,
                group=_primary_group(user) if user else None,
                extra_groups=[] if user else None,
                # Own process group: stopping it also stops the children it forked
                # (Celery pool processes, uvicorn workers, task supervisors).
                start_new_session=True,
            )
        return cls(name, popen, log_path, stop_signal)

    def alive(self) -> bool:
        """Return True while the process runs."""
        return self.popen.poll() is None

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """Return the end of the process's log."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def check_alive(self) -> None:
        """Raise ``ServiceError`` when the process has exited."""
        if not self.alive():
            raise ServiceError(self.name, f"exited with {self.popen.returncode}", self.log_tail())

    def stop(self) -> None:
        """Stop the process group politely, then by SIGKILL after ``STOP_TIMEOUT_S``."""
        stop_all([self])

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)


def stop_all(processes: Sequence[ManagedProcess]) -> None:
    """Signal every process first and then wait, so shutdowns overlap instead of adding up."""
    for process in processes:
        if process.alive():
            process._signal_group(process.stop_signal)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        try:
            process.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process._signal_group(signal.SIGKILL)
            process.popen.wait(STOP_TIMEOUT_S)
        # Children that outlived their leader (a pool process mid-task) go too.
        process._signal_group(signal.SIGKILL)


def _primary_group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL cluster with one database, trust authentication."""

    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    role: str = PG_ROLE
    database: str = PG_DATABASE

    def url(self, driver: str = "postgresql+psycopg2", database: str | None = None) -> str:
        """Return a SQLAlchemy URL (``driver`` ``postgresql`` gives a libpq URL)."""
        return f"{driver}://{self.role}@{self.host}:{self.port}/{database or self.database}"

    def connect(self, database: str | None = None) -> Any:
        """Open a psycopg2 connection in autocommit mode."""
        # Imported here: psycopg2 is in the "scale" extra, and this module is a suite-wide plugin.
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.role, dbname=database or self.database
        )
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> None:
        """Create the database ``name`` (an identifier, not user input)."""
        with contextlib.closing(self.connect("postgres")) as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')


def postgres_bindir() -> Path:
    """Return the folder holding ``initdb`` and ``postgres`` of PostgreSQL 15."""
    override = os.environ.get("BABYCONNECT_PG_BINDIR")
    candidates = [Path(override)] if override else list(PG_BIN_CANDIDATES)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    raise ServiceError("postgresql", "initdb/postgres not found; run .ci/services.sh")


def _postgres_os_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError as exc:
        raise ServiceError("postgresql", "running as root needs the 'postgres' OS user") from exc
    return PG_OS_USER


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a PostgreSQL 15 cluster on a free loopback port; remove it on exit."""
    bindir = postgres_bindir()
    user = _postgres_os_user()
    root = Path(tempfile.mkdtemp(prefix="bc-pg-"))
    if user:
        shutil.chown(root, user=user, group=_primary_group(user))
    data_dir = root / "data"
    port = free_port()
    process: ManagedProcess | None = None
    try:
        _initdb(bindir, data_dir, root, user)
        process = ManagedProcess.start(
            "postgresql",
            [str(bindir / "postgres"), "-D", str(data_dir), *_settings_args(port, root)],
            root / "postgres.log",
            cwd=root,
            user=user,
            # SIGINT is PostgreSQL's "fast shutdown": end sessions, no waiting for clients.
            stop_signal=signal.SIGINT,
        )
        server = PostgresServer(port, data_dir)
        _wait_for_postgres(server, process)
        server.create_database(PG_DATABASE)
        yield server
    finally:
        if process:
            process.stop()
        shutil.rmtree(root, ignore_errors=True)


def _settings_args(port: int, socket_dir: Path) -> list[str]:
    settings = {
        "port": str(port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(socket_dir),
        # Durability is worthless for a throwaway cluster; skipping it saves seconds.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        # Airflow's components and their task processes each keep a pool of connections.
        "max_connections": "200",
    }
    return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]


def _initdb(bindir: Path, data_dir: Path, root: Path, user: str | None) -> None:
    options = "--auth=trust --encoding=UTF8 --no-locale --no-sync --no-instructions".split()
    argv = [str(bindir / "initdb"), "-D", str(data_dir), "-U", PG_ROLE, *options]
    group = _primary_group(user) if user else None
    done = subprocess.run(
        argv, cwd=root, user=user, group=group, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        tail = done.stderr[-_LOG_TAIL_CHARS:]
        raise ServiceError("initdb", f"exited with {done.returncode}", tail)


def _wait_for_postgres(server: PostgresServer, process: ManagedProcess) -> None:
    import psycopg2

    def ready() -> bool:
        process.check_alive()
        try:
            server.connect("postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    _wait_for_service(ready, process, "accepting connections")


def _answers(probe: Callable[[], bool], process: ManagedProcess) -> Callable[[], bool]:
    """Wrap ``probe`` so that waiting stops at once when the process has died."""

    def check() -> bool:
        process.check_alive()
        return probe()

    return check


def _wait_for_service(ready: Callable[[], bool], process: ManagedProcess, what: str) -> None:
    try:
        wait_until(ready, START_TIMEOUT_S, f"{process.name} {what}")
    except TimeoutError as exc:
        raise ServiceError(process.name, str(exc), process.log_tail()) from exc


# --- Redis ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    """A running throwaway Redis server without persistence."""

    port: int
    host: str = "127.0.0.1"

    def url(self, db: int = 0) -> str:
        """Return a ``redis://`` URL for database ``db``."""
        return f"redis://{self.host}:{self.port}/{db}"

    def ping(self) -> bool:
        """Return True when the server answers PING."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free loopback port; stop it and remove its folder on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("redis", "redis-server not found; run .ci/services.sh")
    root = Path(tempfile.mkdtemp(prefix="bc-redis-"))
    server = RedisServer(free_port())
    process = ManagedProcess.start(
        "redis",
        [binary, *_redis_args(server.port, root)],
        root / "redis.log",
        cwd=root,
    )
    try:
        _wait_for_service(_answers(server.ping, process), process, "answering PING")
        yield server
    finally:
        process.stop()
        shutil.rmtree(root, ignore_errors=True)


def _redis_args(port: int, folder: Path) -> list[str]:
    # No snapshots, no append-only file: a broker for one test run has nothing worth keeping.
    settings = {"bind": "127.0.0.1", "port": str(port), "dir": str(folder), "save": ""}
    settings |= {"appendonly": "no", "protected-mode": "yes"}
    return [arg for key, value in settings.items() for arg in (f"--{key}", value)]


# --- Airflow on Celery ---------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInstanceRow:
    """One task instance of a Celery run as the metadata DB holds it, with its XCom."""

    task_id: str
    map_index: int
    state: str | None
    hostname: str
    pool: str
    xcom: Any


@dataclass
class CeleryDeployment:
    """A running Airflow 3 CeleryExecutor deployment for one test."""

    airflow: AirflowEnv
    postgres: PostgresServer
    redis: RedisServer
    api_port: int
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run ``airflow ARGS`` against this deployment's metadata DB."""
        return self.airflow.cli(*args, timeout=timeout)

    def check_alive(self) -> None:
        """Raise ``ServiceError`` if any component has exited."""
        for process in self.processes.values():
            process.check_alive()

    def logs(self) -> str:
        """Return the tail of every component's log, for a failure message."""
        return "\n".join(f"--- {p.name} ---\n{p.log_tail(1500)}" for p in self.processes.values())

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> None:
        """Wait until the dag-processor has stored ``dag_id`` and it is unpaused."""

        def parsed() -> bool:
            self.check_alive()
            row = self._query_one("SELECT is_paused FROM dag WHERE dag_id = %s", dag_id)
            return row is not None and not row[0]

        with _timed(f"parsing {dag_id}"):
            self._wait(parsed, timeout, f"DAG {dag_id} parsed")

    def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any] | None = None) -> None:
        """Create a manual run through ``airflow dags trigger``; the scheduler picks it up."""
        self.cli("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf or {}))

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Wait until the run is finished (success or failed) and return its state."""
        final: dict[str, str] = {}

        def finished() -> bool:
            self.check_alive()
            row = self._query_one(
                "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id
            )
            if row and row[0] in ("success", "failed"):
                final["state"] = row[0]
            return bool(final)

        with _timed(f"run {run_id}"):
            self._wait(finished, timeout, f"run {run_id} finished")
        return final["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceRow]:
        """Return every task instance of the run with its ``return_value`` XCom."""
        sql = """
            SELECT ti.task_id, ti.map_index, ti.state, coalesce(ti.hostname, ''), ti.pool, x.value
            FROM task_instance ti
            LEFT JOIN xcom x ON x.dag_id = ti.dag_id AND x.run_id = ti.run_id
                AND x.task_id = ti.task_id AND x.map_index = ti.map_index
                AND x.key = 'return_value'
            WHERE ti.dag_id = %s AND ti.run_id = %s
            ORDER BY ti.task_id, ti.map_index
        """
        with contextlib.closing(self.postgres.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, (dag_id, run_id))
            rows = cur.fetchall()
        return [TaskInstanceRow(*row[:5], xcom=_xcom_value(row[5])) for row in rows]

    def _query_one(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        with contextlib.closing(self.postgres.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            wait_until(check, timeout, what)
        except (TimeoutError, ServiceError) as exc:
            raise ServiceError("airflow", str(exc), self.logs()) from exc


def _xcom_value(stored: Any) -> Any:
    # Values pushed through the Task Execution API are stored as JSON documents; values written
    # through XComModel.serialize_value are a JSON text inside the JSON column.
    if isinstance(stored, str):
        with contextlib.suppress(ValueError):
            return json.loads(stored)
    return stored


def celery_environ(
    home: Path, dags_folder: Path, postgres: PostgresServer, redis: RedisServer, api_port: int
) -> dict[str, str]:
    """Return the environment shared by every process of a Celery deployment."""
    return isolated_environ(
        home,
        dags_folder,
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres.url(),
        AIRFLOW__CELERY__BROKER_URL=redis.url(),
        # SQLAlchemy 2.1 maps a bare "postgresql" to psycopg 3, which is not installed.
        AIRFLOW__CELERY__RESULT_BACKEND=postgres.url("db+postgresql+psycopg2"),
        # One task per worker process at a time, no prefetching: tasks spread over workers.
        AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER="1",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(api_port),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{api_port}",
        AIRFLOW__API__SECRET_KEY="babyconnect-test-only-api-secret",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
        # Short loops so a toy run takes seconds; production keeps the defaults.
        AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="10",
        # Log-serving ports would collide between processes on one host; logs are read as files.
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
    )


@contextlib.contextmanager
def celery_deployment(
    dags_folder: Path,
    postgres: PostgresServer,
    redis: RedisServer,
    *,
    workers: int = 2,
    concurrency: int = 1,
    pools: Mapping[str, int] | None = None,
) -> Iterator[CeleryDeployment]:
    """Run api-server, scheduler, dag-processor and ``workers`` Celery workers; stop them on exit.

    Each worker gets ``HARNESS_WORKER=worker-<n>`` in its environment, which its tasks inherit,
    so a toy task can report which worker ran it.
    """
    home = Path(tempfile.mkdtemp(prefix="bc-airflow-celery-"))
    # A database of its own per deployment: a session's cluster can serve several tests.
    database = replace(postgres, database=f"airflow_{uuid.uuid4().hex[:12]}")
    database.create_database(database.database)
    api_port = free_port()
    environ = celery_environ(home, dags_folder, database, redis, api_port)
    deployment = CeleryDeployment(AirflowEnv(home, dags_folder, environ), database, redis, api_port)
    try:
        with _timed("airflow db migrate"):
            deployment.cli("db", "migrate", timeout=300)
        with _timed("pools"):
            for name, slots in (pools or {}).items():
                deployment.airflow.create_pool(name, slots)
        with _timed("components start"):
            _start_components(deployment, workers, concurrency)
            _wait_for_api_server(deployment)
        yield deployment
    finally:
        with _timed("components stop"):
            stop_all(list(deployment.processes.values()))
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def _timed(step: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    log.info("celery deployment: %s took %.1f s", step, time.monotonic() - started)


def _start_components(deployment: CeleryDeployment, workers: int, concurrency: int) -> None:
    home = deployment.airflow.home
    environ = deployment.airflow.environ
    airflow = str(AIRFLOW_BIN)
    commands = {
        "api-server": [airflow, "api-server"],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
    }
    for name, argv in commands.items():
        deployment.processes[name] = ManagedProcess.start(
            name, argv, home / f"{name}.log", env=environ, cwd=home
        )
    for n in range(1, workers + 1):
        name = f"worker-{n}"
        argv = [
            airflow,
            "celery",
            "worker",
            "--concurrency",
            str(concurrency),
            "--celery-hostname",
            f"{name}@%h",
            "--skip-serve-logs",
            "--without-gossip",
            "--without-mingle",
        ]
        deployment.processes[name] = ManagedProcess.start(
            name, argv, home / f"{name}.log", env=dict(environ, HARNESS_WORKER=name), cwd=home
        )


def _wait_for_api_server(deployment: CeleryDeployment) -> None:
    url = f"http://127.0.0.1:{deployment.api_port}/execution/health"

    def healthy() -> bool:
        deployment.check_alive()
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    deployment._wait(healthy, START_TIMEOUT_S * 2, "api-server healthy")


# --- pytest fixtures -----------------------------------------------------------------------


def _skip_or_fail(reason: str) -> None:
    # On CI a missing service is a broken install step, not a reason to skip: a skip there
    # would turn the scale-out test green without running it.
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[PostgresServer]:
    """Give a throwaway PostgreSQL 15 cluster for the session (skipped if not installed)."""
    try:
        postgres_bindir()
    except ServiceError as exc:
        _skip_or_fail(str(exc))
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisServer]:
    """Give a throwaway Redis server for the session (skipped if not installed)."""
    if shutil.which("redis-server") is None:
        _skip_or_fail("redis-server not installed; run .ci/services.sh")
    with redis_server() as server:
        yield server
