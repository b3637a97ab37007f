"""Run real Airflow 3.3 in tests: an isolated AIRFLOW_HOME, ``dag.test()`` and DAG file integrity.

Airflow reads its configuration once, when ``airflow`` is first imported, and ``dag.test()``
changes process-wide state (an in-process Task Execution API, structlog configuration, signal
handlers, a SQLAlchemy engine bound to one database). So every Airflow call made here runs in a
child interpreter started with the isolated environment already in place; the pytest process
never imports ``airflow``. The child is this very file run as a script (see ``_child_main``), and
it hands its result back as a JSON file because Airflow logs to stdout.

Register this module as a pytest plugin (``pytest_plugins`` in the root conftest). Its
``pytest_configure`` hook also points ``AIRFLOW_HOME`` of the pytest process at a throwaway
folder before any test module is collected, so that a test which does import a DAG module
in-process cannot create ``~/airflow`` or load the example DAGs.

``[core] unit_test_mode`` is deliberately not used: it loads Airflow's own ``unit_tests.cfg``
(its test DAG folder, ``load_examples = True``) and draws a new Fernet key and JWT secret in every
process, which breaks any deployment of more than one process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
AIRFLOW_BIN = VENV_BIN / "airflow"

# Fixed keys: every process of one test deployment must agree on them (Fernet encrypts
# connection passwords in the metadata DB; the JWT secret signs Task Execution API tokens).
# They protect nothing but throwaway test databases.
TEST_FERNET_KEY = "oLkGGp6eJp7Qh5FDVdP1Uo2w5g_vI9ZsJ4n2Sx6tHk0="
TEST_JWT_SECRET = "babyconnect-test-only-jwt-secret-0123456789"

CHILD_TIMEOUT_S = 300
_LOG_TAIL_CHARS = 4000
_RESULT_LOG_CHARS = 20000


class AirflowChildError(AssertionError):
    """An Airflow command in a child interpreter failed; carries the command and its log tail."""

    def __init__(self, what: str, returncode: int, log_tail: str) -> None:
        self.what = what
        self.returncode = returncode
        self.log_tail = log_tail
        super().__init__(f"{what} exited with {returncode}; last output:\n{log_tail}")


class DagIntegrityError(AssertionError):
    """A DAG file did something forbidden while being parsed, or defines no DAG."""

    def __init__(self, dag_file: Path, problems: Sequence[str]) -> None:
        self.dag_file = dag_file
        self.problems = tuple(problems)
        listed = "\n  ".join(self.problems)
        super().__init__(f"{dag_file} fails the DAG integrity check:\n  {listed}")


@dataclass(frozen=True)
class TaskInstanceResult:
    """One task instance of a finished run, with its ``return_value`` XCom (None if none)."""

    task_id: str
    map_index: int
    state: str | None
    pool: str
    try_number: int
    xcom: Any = None


@dataclass(frozen=True)
class AssetEventResult:
    """One asset event a run emitted (an outlet of a successful task)."""

    asset_name: str
    asset_uri: str
    source_task_id: str | None
    source_map_index: int | None


@dataclass(frozen=True)
class DagRunResult:
    """What a ``dag.test()`` run left in the metadata DB, read back after the run."""

    dag_id: str
    run_id: str
    state: str
    conf: dict[str, Any]
    task_instances: tuple[TaskInstanceResult, ...]
    asset_events: tuple[AssetEventResult, ...]
    # The end of the child's output (Airflow's and the tasks' logs): ``assert ..., run.log_tail``.
    log_tail: str = field(default="", repr=False)

    def task(self, task_id: str, map_index: int = -1) -> TaskInstanceResult:
        """Return the task instance ``task_id`` (``map_index`` for one mapped instance)."""
        for ti in self.task_instances:
            if ti.task_id == task_id and ti.map_index == map_index:
                return ti
        raise KeyError(f"no task instance {task_id}[{map_index}] in run {self.run_id}")

    def mapped(self, task_id: str) -> list[TaskInstanceResult]:
        """Return the mapped instances of ``task_id`` ordered by map index."""
        found = [ti for ti in self.task_instances if ti.task_id == task_id and ti.map_index >= 0]
        return sorted(found, key=lambda ti: ti.map_index)

    def states(self) -> dict[str, str | None]:
        """Return ``{"task_id" or "task_id[i]": state}`` for a readable assertion diff."""
        return {_ti_label(ti): ti.state for ti in self.task_instances}


def _ti_label(ti: TaskInstanceResult) -> str:
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"


def isolated_environ(home: Path, dags_folder: Path, **overrides: str) -> dict[str, str]:
    """Return the environment of an isolated Airflow: own home, SQLite DB, no examples.

    Inherited ``AIRFLOW*`` variables are dropped so a developer's own Airflow settings never
    leak into a test. ``overrides`` are added last (``AIRFLOW__SECTION__KEY`` names).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__FERNET_KEY=TEST_FERNET_KEY,
        AIRFLOW__API_AUTH__JWT_SECRET=TEST_JWT_SECRET,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        # The project's DAGs import the ``converters`` package from the work tree.
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
    )
    env.update(overrides)
    return env


@dataclass(frozen=True)
class AirflowEnv:
    """An isolated Airflow installation: a home folder, a migrated DB and a DAGs folder."""

    home: Path
    dags_folder: Path
    environ: Mapping[str, str] = field(repr=False)

    def with_dags_folder(self, dags_folder: Path) -> AirflowEnv:
        """Return the same home and DB with another DAGs folder (the ``dags-folder`` bundle)."""
        environ = dict(self.environ, AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder))
        return replace(self, dags_folder=dags_folder, environ=environ)

    def with_environ(self, **variables: str) -> AirflowEnv:
        """Return the same installation with extra environment variables for its children."""
        return replace(self, environ=dict(self.environ, **variables))

    def cli(self, *args: str, timeout: float = CHILD_TIMEOUT_S) -> str:
        """Run ``airflow ARGS`` in this environment and return its output; raise on failure."""
        return _run_child([str(AIRFLOW_BIN), *args], self.environ, f"airflow {args[0]}", timeout)

    def create_pool(self, name: str, slots: int, description: str = "test pool") -> None:
        """Create or update the pool ``name`` with ``slots`` slots."""
        self.cli("pools", "set", name, str(slots), description)

    def dag_test(
        self,
        dag_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        variable_file: Path | None = None,
        conn_file: Path | None = None,
        timeout: float = CHILD_TIMEOUT_S,
    ) -> DagRunResult:
        """Run ``dag.test()`` for ``dag_id`` in a child interpreter and read the run back."""
        spec = {
            "dags_folder": str(self.dags_folder),
            "dag_id": dag_id,
            "conf": dict(conf or {}),
            "variable_file": str(variable_file) if variable_file else None,
            "conn_file": str(conn_file) if conn_file else None,
        }
        result = _run_child_script("dag-test", spec, self.environ, timeout)
        return _dag_run_result(result)

    def dag_file_integrity(self, dag_file: Path, *, inbox: Path | None = None) -> list[str]:
        """Check ``dag_file`` in this environment; see ``assert_dag_file_integrity``."""
        spec = {"dag_file": str(dag_file), "inbox": str(inbox) if inbox else None}
        result = _run_child_script("integrity", spec, self.environ, CHILD_TIMEOUT_S)
        problems = [*result["violations"], *result["import_errors"]]
        if not result["dag_ids"]:
            problems.append("no DAG is defined at module level or by a @dag call")
        if problems:
            raise DagIntegrityError(dag_file, problems)
        return sorted(result["dag_ids"])


def _dag_run_result(raw: Mapping[str, Any]) -> DagRunResult:
    return DagRunResult(
        dag_id=raw["dag_id"],
        run_id=raw["run_id"],
        state=raw["state"],
        conf=raw["conf"],
        task_instances=tuple(TaskInstanceResult(**ti) for ti in raw["task_instances"]),
        asset_events=tuple(AssetEventResult(**ev) for ev in raw["asset_events"]),
        log_tail=raw.get("log_tail", ""),
    )


def prepare_airflow(home: Path, dags_folder: Path, **overrides: str) -> AirflowEnv:
    """Create an isolated Airflow in ``home`` and migrate its SQLite DB (``airflow db migrate``)."""
    home.mkdir(parents=True, exist_ok=True)
    env = AirflowEnv(home, dags_folder, isolated_environ(home, dags_folder, **overrides))
    env.cli("db", "migrate")
    return env


def assert_dag_file_integrity(
    dag_file: Path, *, inbox: Path | None = None, airflow_env: AirflowEnv | None = None
) -> list[str]:
    """Parse ``dag_file`` in a fresh interpreter and return the ids of the DAGs it defines.

    While the file is parsed (Airflow's own DagBag, as the dag-processor does it) an audit hook
    (PEP 578) refuses every socket connection or name lookup and every open or listing of a path
    under ``inbox``; it also records them, so a DAG file that swallows the error is still caught.
    Raises ``DagIntegrityError`` on any violation, import error, or when no DAG is defined.
    """
    if airflow_env is not None:
        return airflow_env.dag_file_integrity(dag_file, inbox=inbox)

    with tempfile.TemporaryDirectory(prefix="bc-airflow-parse-") as home:
        # Parsing needs a home for airflow.cfg but no migrated DB.
        env = AirflowEnv(Path(home), dag_file.parent, isolated_environ(Path(home), dag_file.parent))
        return env.dag_file_integrity(dag_file, inbox=inbox)


def dag_files(folder: Path) -> list[Path]:
    """Return the Python files of a DAGs folder that Airflow would parse, for parametrising."""
    return sorted(
        path
        for path in folder.rglob("*.py")
        if not path.name.startswith(("_", ".")) and "__pycache__" not in path.parts
    )


def _run_child(argv: list[str], environ: Mapping[str, str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            argv,
            env=dict(environ),
            cwd=str(PROJECT_ROOT),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        output = _as_text(exc.stdout) + _as_text(exc.stderr)
        raise AirflowChildError(
            f"{what} (timed out after {timeout:.0f} s)", -1, output[-_LOG_TAIL_CHARS:]
        ) from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise AirflowChildError(what, done.returncode, output[-_LOG_TAIL_CHARS:])
    return output


def _as_text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def _run_child_script(
    command: str, spec: Mapping[str, Any], environ: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bc-airflow-child-") as scratch:
        spec_path = Path(scratch) / "spec.json"
        result_path = Path(scratch) / "result.json"
        spec_path.write_text(json.dumps({**spec, "result": str(result_path)}))

        argv = [sys.executable, str(Path(__file__).resolve()), command, str(spec_path)]
        output = _run_child(argv, environ, f"child {command}", timeout)
        result: dict[str, Any] = json.loads(result_path.read_text())
    result["log_tail"] = output[-_RESULT_LOG_CHARS:]
    return result


# --- pytest plugin -------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # the child interpreter can run without pytest
    pytest = None  # type: ignore[assignment]

_SESSION_HOME: str | None = None


def pytest_configure(config: Any) -> None:
    """Point the pytest process's own AIRFLOW_HOME at a throwaway folder before collection."""
    global _SESSION_HOME
    if "airflow" in sys.modules:
        # Too late: Airflow already read its configuration. Nothing safe can be done here.
        return
    _SESSION_HOME = tempfile.mkdtemp(prefix="bc-airflow-pytest-")
    os.environ["AIRFLOW_HOME"] = _SESSION_HOME
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")


def pytest_unconfigure(config: Any) -> None:
    """Remove the throwaway AIRFLOW_HOME of the pytest process."""
    if _SESSION_HOME:
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


if pytest is not None:

    @pytest.fixture(scope="session")
    def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowEnv]:
        """Give an isolated Airflow with a migrated SQLite DB; DAGs folder: the project's ``dags/``.

        Use ``airflow_env.with_dags_folder(path)`` for another folder: it shares the DB.
        """
        home = tmp_path_factory.mktemp("airflow-home")
        yield prepare_airflow(home, PROJECT_ROOT / "dags")


# --- child interpreter ---------------------------------------------------------------------


def _child_dag_test(spec: dict[str, Any]) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(spec["dags_folder"])
    dag = bag.get_dag(spec["dag_id"])
    if dag is None:
        raise SystemExit(
            f"DAG {spec['dag_id']} not found; import errors in {sorted(bag.import_errors)}"
        )

    dag_run = dag.test(
        run_conf=spec["conf"],
        variable_file_path=spec["variable_file"],
        conn_file_path=spec["conn_file"],
    )
    return _child_read_run(dag_run.dag_id, dag_run.run_id)


def _child_read_run(dag_id: str, run_id: str) -> dict[str, Any]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        dag_run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": str(dag_run.state),
            "conf": dict(dag_run.conf or {}),
            "task_instances": _child_task_instances(session, dag_run),
            "asset_events": _child_asset_events(session, dag_id, run_id),
        }


def _child_task_instances(session: Any, dag_run: Any) -> list[dict[str, Any]]:
    from airflow.models.xcom import XComModel

    xcoms = {
        (x.task_id, x.map_index): XComModel.deserialize_value(x)
        for x in session.query(XComModel).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, key="return_value"
        )
    }
    return [
        {
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "state": str(ti.state) if ti.state else None,
            "pool": ti.pool,
            "try_number": ti.try_number,
            "xcom": xcoms.get((ti.task_id, ti.map_index)),
        }
        for ti in dag_run.get_task_instances(session=session)
    ]


def _child_asset_events(session: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel

    rows = (
        session.query(AssetEvent, AssetModel)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .filter(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
    )
    return [
        {
            "asset_name": asset.name,
            "asset_uri": asset.uri,
            "source_task_id": event.source_task_id,
            "source_map_index": event.source_map_index,
        }
        for event, asset in rows
    ]


def _child_integrity(spec: dict[str, Any]) -> dict[str, Any]:
    inbox = os.path.realpath(spec["inbox"]) if spec["inbox"] else None
    violations: list[str] = []
    guard = {"on": False}

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if not guard["on"]:
            return
        problem = _child_forbidden(event, args, inbox)
        if problem:
            violations.append(problem)
            raise PermissionError(f"DAG integrity check: {problem}")

    # Import Airflow before arming the hook: only what the DAG file itself does is judged.
    from airflow.dag_processing.dagbag import DagBag

    sys.addaudithook(audit)
    guard["on"] = True
    try:
        bag = DagBag(spec["dag_file"])
    finally:
        guard["on"] = False
    return {
        "dag_ids": sorted(bag.dag_ids),
        "violations": sorted(set(violations)),
        "import_errors": [
            f"import error in {name}: {_last_line(trace)}"
            for name, trace in sorted(bag.import_errors.items())
        ],
    }


def _last_line(traceback_text: str) -> str:
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no traceback)"


def _child_forbidden(event: str, args: tuple[Any, ...], inbox: str | None) -> str | None:
    if event in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
        return f"network access at parse time ({event})"
    if inbox is None or event not in ("open", "os.listdir", "os.scandir"):
        return None
    path = args[0] if args else None
    if not isinstance(path, (str, bytes, os.PathLike)):
        return None  # a file descriptor, not a path
    real = os.path.realpath(os.fsdecode(path))
    if real == inbox or real.startswith(inbox + os.sep):
        return f"inbox access at parse time ({event} under the inbox folder)"
    return None


_CHILD_COMMANDS = {"dag-test": _child_dag_test, "integrity": _child_integrity}


def _child_main(argv: list[str]) -> None:
    command, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    result = _CHILD_COMMANDS[command](spec)
    Path(spec["result"]).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    # Running as a script put tests/support/ first on sys.path; drop it so no helper module
    # there can shadow a package Airflow imports.
    sys.path.pop(0)
    _child_main(sys.argv[1:])
