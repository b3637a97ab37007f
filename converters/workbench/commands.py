"""``babyconnect explain``, ``babyconnect mappings test`` and ``babyconnect coverage``.

Registered by :func:`converters.cli._optional_commands`. Exit codes follow the cli module:
0 fine, 1 some mapping test failed, 2 wrong usage (an input or record that does not exist).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from converters.errors import SourceError
from converters.mapping.tables import load_mappings
from converters.workbench import coverage, explain, html, mapping_tests

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the workbench's commands to the ``babyconnect`` parser."""
    cmd = subparsers.add_parser(
        "explain", help="show, for one record, where every FHIR element came from")
    cmd.add_argument("file", type=Path, help="an export file")
    which = cmd.add_mutually_exclusive_group()
    which.add_argument("--record", default=None, help="record id (MSH-10, document id, row N)")
    which.add_argument("--position", type=int, default=None, help="1-based record position")
    cmd.add_argument("--format", choices=["text", "json"], default="text")
    cmd.add_argument("--mappings", type=Path, default=None, help="mapping tables folder")
    cmd.set_defaults(func=cmd_explain)

    cmd = subparsers.add_parser("mappings", help="work with the mapping tables")
    inner = cmd.add_subparsers(title="mapping commands", metavar="ACTION")
    test = inner.add_parser("test", help="run the tests: entries of every mapping file")
    test.add_argument("--mappings", type=Path, default=None, help="mapping tables folder")
    test.add_argument("--verbose", "-v", action="store_true", help="list passing tests too")
    test.set_defaults(func=cmd_mappings_test)

    cmd = subparsers.add_parser(
        "coverage", help="list source fields no rule read and codes no table knew")
    cmd.add_argument("inputs", nargs="+", type=Path, help="export files or folders")
    cmd.add_argument("--out", type=Path, default=Path("target"),
                     help="folder for coverage.html (default: target)")
    cmd.add_argument("--mappings", type=Path, default=None, help="mapping tables folder")
    cmd.add_argument("--limit", type=int, default=40, help="rows per terminal table")
    cmd.set_defaults(func=cmd_coverage)


def cmd_explain(args: argparse.Namespace) -> int:
    """Print the lineage of one record to the author's own terminal (never to the log)."""
    mappings = load_mappings(args.mappings)
    try:
        record = explain.pick_record(args.file, args.record, args.position)
        traced = explain.convert_traced(record, mappings)
    except LookupError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except SourceError as exc:
        sys.stderr.write(f"the record cannot be converted: {exc}\n")
        return EXIT_FAILED
    found = explain.elements(traced)
    render = explain.render_json if args.format == "json" else explain.render_text
    sys.stdout.write(render(traced, found))
    return EXIT_OK


def cmd_mappings_test(args: argparse.Namespace) -> int:
    """Run every mapping test; print failures with the rules that wrote the element."""
    results = mapping_tests.run_all(load_mappings(args.mappings))
    failed = [r for r in results if not r.passed]
    for result in results:
        if args.verbose or not result.passed:
            sys.stdout.write(result.describe() + "\n")
    sys.stdout.write(f"{len(results) - len(failed)} passed, {len(failed)} failed\n")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_coverage(args: argparse.Namespace) -> int:
    """Print the coverage tables and write ``coverage.html`` into ``--out``."""
    missing = [str(p) for p in args.inputs if not p.exists()]
    if missing:
        sys.stderr.write(f"error: no such input: {', '.join(missing)}\n")
        return EXIT_USAGE
    report = coverage.measure(args.inputs, load_mappings(args.mappings))
    sys.stdout.write(coverage.render_table(report, args.limit))
    path = html.write_html(report, args.out)
    sys.stdout.write(f"\nHTML report: {path}\n")
    return EXIT_OK
