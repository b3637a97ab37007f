"""``babyconnect``: the command line over the pipeline.

Exit codes a scheduler can act on:
    0  every record loaded (or skipped with a reason)
    1  the run finished, and some records are in quarantine (see the report)
    2  wrong usage, or an input or setting that does not exist
    3  a mapping table is invalid (file, line and key are printed)
    4  the target could not be reached: retrying later can succeed; a re-run resumes
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from converters import __version__
from converters.errors import ConfigurationError, MappingTableError, TransientLoadError
from converters.wiring import Settings, build_pipeline, is_server, state_folder

EXIT_OK, EXIT_QUARANTINED, EXIT_USAGE, EXIT_MAPPING, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `babyconnect reconcile | head` ends quietly
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except MappingTableError as exc:
        print(f"mapping table error: {exc}", file=sys.stderr)
        return EXIT_MAPPING
    except TransientLoadError as exc:
        print(f"target unreachable, retry later (a re-run resumes): {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (ConfigurationError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="babyconnect",
        description="Convert Dutch birth-care exports to Babyconnect FHIR STU3 and load them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    convert = commands.add_parser("convert", help="convert exports into a target folder")
    convert.add_argument("inputs", nargs="+", type=Path, help="export files or folders")
    convert.add_argument("--out", default="target", help="target folder (default: target)")
    _run_options(convert)
    convert.set_defaults(func=cmd_convert)

    load = commands.add_parser("load", help="convert exports and load them into a FHIR server")
    load.add_argument("inputs", nargs="+", type=Path, help="export files or folders")
    load.add_argument("--fhir-url", required=True, help="FHIR base URL (or BABYCONNECT_FHIR_URL)")
    load.add_argument("--state", type=Path, default=None,
                      help="folder for the ledger, id key and quarantine (default .babyconnect)")
    load.add_argument("--concurrency", type=int, default=None)
    load.add_argument("--group-size", type=int, default=None,
                      help="send up to this many records' bundles in one transaction")
    load.add_argument("--no-verify-tls", action="store_true")
    _run_options(load)
    load.set_defaults(func=cmd_load)

    lint = commands.add_parser("lint", help="check all mapping tables without converting")
    lint.add_argument("--mappings", type=Path, default=None)
    lint.set_defaults(func=cmd_lint)

    reconcile = commands.add_parser(
        "reconcile", help="per run and file: records in = loaded + quarantined + skipped")
    reconcile.add_argument("--state", type=Path, default=Path("target"),
                           help="target or state folder holding ledger.db (default target)")
    reconcile.add_argument("--ledger", default=None, help="ledger URL instead of --state")
    reconcile.add_argument("--run", default=None, help="one run id")
    reconcile.add_argument("--format", choices=["text", "json"], default="text")
    reconcile.set_defaults(func=cmd_reconcile)

    reprocess = commands.add_parser(
        "reprocess", help="convert quarantined records again (after a mapping fix)")
    reprocess.add_argument("--out", default="target", help="target folder or FHIR URL")
    reprocess.add_argument("--state", type=Path, default=None,
                           help="state folder of a FHIR URL target, as given to load "
                                "(default .babyconnect; a folder target is its own state)")
    _run_options(reprocess)
    reprocess.set_defaults(func=cmd_reprocess)

    _optional_commands(commands)
    return parser


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mappings", type=Path, default=None, help="mapping tables folder")
    parser.add_argument("--ledger", default=None,
                        help="ledger URL (sqlite:///... or postgresql://...)")
    parser.add_argument("--id-key", default=None,
                        help="key for resource ids (default BABYCONNECT_ID_KEY or the state's)")
    parser.add_argument("--validation", choices=["strict", "warn", "off"], default="strict")
    parser.add_argument("--source", default="cli", help="source system name for the ledger")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def _optional_commands(commands: argparse._SubParsersAction) -> None:
    """Commands that live beside their own subsystem register themselves here."""
    from converters.validation import command as validate_command

    validate_command.add_parser(commands)
    for module_name in ("converters.workbench.commands", "converters.conformance"):
        try:
            module = __import__(module_name, fromlist=["add_parsers"])
        except ModuleNotFoundError:
            continue
        module.add_parsers(commands)


# -- commands ---------------------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace) -> int:
    settings = _settings(args, target=args.out)
    return _run(settings, args.inputs, args.quiet)


def cmd_load(args: argparse.Namespace) -> int:
    server: dict[str, object] = {}
    if args.concurrency:
        server["concurrency"] = args.concurrency
    if args.group_size:
        server["group_size"] = args.group_size
    if args.no_verify_tls:
        server["verify_tls"] = False
    settings = _settings(args, target=args.fhir_url, state=args.state, server=server)
    return _run(settings, args.inputs, args.quiet)


def cmd_reprocess(args: argparse.Namespace) -> int:
    from converters.reprocess import reprocess

    settings = _settings(args, target=args.out, state=args.state, kind="reprocess")
    report = reprocess(settings)
    if not args.quiet:
        print(report.summary())
    # A record skipped here stays in quarantine (its bytes hold nothing a reader can read).
    remaining = report.outcomes["quarantined"] + report.outcomes["skipped"]
    return EXIT_QUARANTINED if remaining else EXIT_OK


def cmd_lint(args: argparse.Namespace) -> int:
    from converters.mapping.lint import lint

    problems, mappings = lint(args.mappings)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_MAPPING
    print(f"{len(mappings.files)} mapping table(s) OK (version {mappings.version}): "
          f"{len(mappings.messages)} message, {len(mappings.resources)} resource, "
          f"{len(mappings.datatypes)} datatype maps, {len(mappings.codes)} code tables")
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    from converters.ledger import Ledger

    url = args.ledger or f"sqlite:///{(args.state / 'ledger.db').resolve()}"
    if not args.ledger and not (args.state / "ledger.db").exists():
        raise ConfigurationError(f"no ledger in {args.state}")
    result = Ledger(url).reconcile(args.run)
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(format_reconciliation(result.as_dict()))
    return EXIT_OK if result.ok else EXIT_QUARANTINED


def format_reconciliation(data: dict) -> str:
    lines = [f"{'file':52} {'state':>10} {'in':>7} {'loaded':>7} {'quar.':>7} {'skipped':>7} "
             f"{'diff':>5}"]
    interrupted = 0
    for row in data.get("files", []):
        state = row.get("state", "")
        interrupted += state == "incomplete"
        lines.append(
            f"{str(row.get('path', ''))[-52:]:52} {state:>10} "
            f"{_count(row.get('input_records')):>7} {row.get('loaded', 0):>7} "
            f"{row.get('quarantined', 0):>7} {row.get('skipped', 0):>7} "
            f"{_count(row.get('difference')):>5}"
        )
    if data.get("ok"):
        lines.append("OK: every record is accounted for")
    elif interrupted:
        lines.append(f"INTERRUPTED: {interrupted} file(s) stopped mid-way; run the same command "
                     "again to finish them (done records are skipped)")
    else:
        lines.append("DIFFERENCE: some records are not accounted for (see diff)")
    return "\n".join(lines)


def _count(value: int | None) -> str:
    # An unfinished file has no input count yet (the ledger stores NULL until finish_file).
    return "?" if value is None else str(value)


# -- helpers ----------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, *, target: str, state: Path | None = None,
              server: dict | None = None, kind: str = "convert") -> Settings:
    if not is_server(target) and target != "null:" and Path(target).is_file():
        raise ConfigurationError(f"the target {target} is a file, not a folder")
    return Settings(
        target=target,
        state_dir=state,
        ledger_url=args.ledger,
        id_key=args.id_key,
        mappings_dir=args.mappings,
        validation=args.validation,
        source=args.source,
        kind=kind,
        server=server or {},
    )


def _run(settings: Settings, inputs: Sequence[Path], quiet: bool) -> int:
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"no such input: {path}")
    pipeline = build_pipeline(settings)
    bar = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit=" records", file=sys.stderr, mininterval=0.5)
        pipeline.options.progress = bar.update
    try:
        report = pipeline.run(list(inputs))
    finally:
        if bar is not None:
            bar.close()
    report.write(state_folder(settings) / "reports" / f"{report.run_id}.json")
    if not is_server(settings.target) and settings.target != "null:":
        report.write(Path(settings.target) / "report.json")
    if not quiet:
        print(report.summary())
    return EXIT_QUARANTINED if report.outcomes["quarantined"] else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
