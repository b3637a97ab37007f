"""Compare our conversion of ADA instances with Nictiz's reference FHIR output.

Layout read (``../shared/corpus/nictiz-peri326-fhir/<use case>``): ``ada_instance/<case>.xml``
and ``fhir_instance/<case>/*.xml``, one reference resource per file. Each ADA file is converted
with the mapping tables; its resources are then matched to the reference resources of the same
case by *content*, never by id: same resource type and profile, then the pairing that shares the
most elements (code, subject kind, values) wins.

An *element* is a leaf of the reference JSON, written as a path without list positions
(``code.coding.code = 57036006``); extensions are keyed by url. Not counted: ``id``,
``meta.versionId``/``meta.lastUpdated``, ``text`` (narrative), the ``display`` of a Reference
(narrative too) and identifiers in Nictiz's test-harness system for generated resource ids.
A Reference counts as one element whose value is the kind of its target (resource type and
profile), so ``subject`` pointing at a bc-Woman is reproduced whatever the ids are. Dates carry
test-harness placeholders (``${DATE, T, D, -139}``); both sides are normalised first.

The agreement figure is reproduced reference elements / all reference elements, a reference
resource without a match counting all its elements as missing.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Nictiz's test harness gives each generated resource an identifier in this system (DOMAIN.md
# 2.3, "Test/local ids in Nictiz examples"): an id in disguise, so not a compared element.
GENERATED_ID_SYSTEM = "urn:oid:2.16.840.1.113883.2.4.3.11.999.7.6"
SKIPPED_TOP = frozenset({"id", "text"})
SKIPPED_META = frozenset({"versionId", "lastUpdated"})

Leaf = tuple[str, str]


@dataclass(slots=True)
class Resource:
    """One resource of either side, with its elements computed once."""

    case: str
    body: dict[str, Any]
    kind: str
    leaves: Counter[Leaf] = field(default_factory=Counter)


@dataclass(slots=True)
class ProfileTally:
    reference: int = 0
    matched: int = 0
    missing: int = 0
    extra: int = 0
    elements: int = 0
    reproduced: int = 0


@dataclass(slots=True)
class Report:
    """What the comparison found, per profile and per element path."""

    profiles: dict[str, ProfileTally] = field(default_factory=dict)
    missing_elements: Counter[str] = field(default_factory=Counter)
    extra_elements: Counter[str] = field(default_factory=Counter)
    missing_resources: Counter[str] = field(default_factory=Counter)
    extra_resources: Counter[str] = field(default_factory=Counter)
    quarantined: list[str] = field(default_factory=list)

    @property
    def elements(self) -> int:
        return sum(t.elements for t in self.profiles.values())

    @property
    def reproduced(self) -> int:
        return sum(t.reproduced for t in self.profiles.values())

    @property
    def agreement(self) -> float:
        return self.reproduced / self.elements if self.elements else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "agreement": round(self.agreement, 4),
            "elements": self.elements,
            "reproduced": self.reproduced,
            "profiles": {k: vars_of(v) for k, v in sorted(self.profiles.items())},
            "missing_resources": dict(self.missing_resources.most_common()),
            "extra_resources": dict(self.extra_resources.most_common()),
            "missing_elements": dict(self.missing_elements.most_common()),
            "extra_elements": dict(self.extra_elements.most_common()),
            "quarantined": self.quarantined,
        }


def vars_of(tally: ProfileTally) -> dict[str, int]:
    return {name: getattr(tally, name) for name in tally.__slots__}  # type: ignore[attr-defined]


# -- elements -----------------------------------------------------------------------------------


def kind_of(resource: dict[str, Any]) -> str:
    """Return ``Type|profile``: the most specific profile (bc-*, then zib-*, then nl-core-*)."""
    profiles = (resource.get("meta") or {}).get("profile") or []
    names = [p.rsplit("/", 1)[-1] for p in profiles]
    for prefix in ("bc-", "zib-", "nl-core-"):
        chosen = sorted(n for n in names if n.startswith(prefix))
        if chosen:
            return f"{resource['resourceType']}|{chosen[-1]}"
    return f"{resource['resourceType']}|{names[0] if names else '-'}"


def leaves(resource: dict[str, Any], target_kind: Any) -> Counter[Leaf]:
    """Return the compared elements of a resource; ``target_kind(reference)`` names a target."""
    found: Counter[Leaf] = Counter()
    for key, value in resource.items():
        if key in SKIPPED_TOP or key == "resourceType":
            continue
        if key == "meta":
            value = {k: v for k, v in value.items() if k not in SKIPPED_META}
        if key == "identifier" and isinstance(value, list):
            value = [i for i in value
                     if not (isinstance(i, dict) and i.get("system") == GENERATED_ID_SYSTEM)]
        found.update(_walk(value, key, target_kind))
    return found


def _walk(value: Any, path: str, target_kind: Any) -> Iterator[Leaf]:
    if isinstance(value, dict):
        if "reference" in value and isinstance(value["reference"], str):
            yield f"{path}.reference", target_kind(value["reference"])
            value = {k: v for k, v in value.items() if k not in ("reference", "display")}
        for key, child in value.items():
            yield from _walk(child, f"{path}.{key}", target_kind)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and "url" in item and path.endswith("extension"):
                rest = {k: v for k, v in item.items() if k != "url"}
                yield from _walk(rest, f"{path}[{item['url'].rsplit('/', 1)[-1]}]", target_kind)
            else:
                yield from _walk(item, path, target_kind)
    elif value is not None:
        yield path, _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- reading both sides ---------------------------------------------------------------------------


def reference_resources(folder: Path) -> list[dict[str, Any]]:
    """Read Nictiz's reference resources of one case (FHIR XML, placeholders normalised)."""
    from converters.validation import normalise_placeholders
    from converters.validation.fhirxml import xml_to_resource

    out = []
    for path in sorted(folder.glob("*.xml")):
        resource = xml_to_resource(path.read_bytes())
        out.append(json.loads(normalise_placeholders(json.dumps(resource))))
    return out


class Converter:
    """Convert ADA files with the mapping tables, as the pipeline does, without writing."""

    def __init__(self, mappings_root: Path | None = None) -> None:
        from converters.fhir.assembler import Assembler
        from converters.fhir.ids import IdMaker
        from converters.mapping.engine import Engine
        from converters.mapping.tables import load_mappings
        from converters.validation import ProfileValidator

        mappings = load_mappings(mappings_root)
        self.engine = Engine(mappings)
        self.assembler = Assembler(IdMaker(b"conformance-not-secret"), mappings.version)
        self.validator = ProfileValidator.default()

    def convert(self, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
        """Return the resources of every document in ``path`` and the quarantine reasons."""
        from converters.errors import SourceError
        from converters.readers.xml import read_xml

        resources: list[dict[str, Any]] = []
        problems: list[str] = []
        for record in read_xml(path):
            try:
                conversion = self.engine.convert(record)
            except SourceError as exc:
                problems.append(f"{path.name}: {exc.describe()}")
                continue
            assembled = self.assembler.assemble(conversion)
            errors = self._profile_errors(assembled)
            if errors:
                # The pipeline's strict mode quarantines this document: it reaches no repository,
                # so it reproduces nothing here either.
                first = errors[0]
                problems.append(f"{path.name}: {len(errors)} profile finding(s); first: "
                                f"{first.rule} at {first.path} ({first.profile})")
                continue
            resources.extend(e.resource for e in assembled.entries
                             if e.resource["resourceType"] != "Provenance")
            for entry in assembled.entries:
                entry.resource.setdefault("_fullUrl", entry.full_url)
        return resources, problems

    def _profile_errors(self, assembled: Any) -> list[Any]:
        resolve = assembled.resolver()
        return [finding for entry in assembled.entries
                for finding in self.validator.validate(entry.resource, resolve)
                if finding.severity == "error"]


def _prepare(case: str, bodies: list[dict[str, Any]]) -> list[Resource]:
    by_ref: dict[str, str] = {}
    for body in bodies:
        kind = kind_of(body)
        by_ref[f"{body['resourceType']}/{body.get('id')}"] = kind
        if "_fullUrl" in body:
            by_ref[body["_fullUrl"]] = kind
    target = lambda reference: by_ref.get(reference, "unresolved")  # noqa: E731
    out = []
    for body in bodies:
        clean = {k: v for k, v in body.items() if k != "_fullUrl"}
        out.append(Resource(case, clean, kind_of(clean), leaves(clean, target)))
    return out


# -- matching ------------------------------------------------------------------------------------


def compare_case(report: Report, ours: list[Resource], theirs: list[Resource]) -> None:
    """Match one case's resources by content and add the outcome to ``report``."""
    kinds = {r.kind for r in theirs} | {r.kind for r in ours}
    for kind in sorted(kinds):
        mine = [r for r in ours if r.kind == kind]
        refs = [r for r in theirs if r.kind == kind]
        tally = report.profiles.setdefault(kind, ProfileTally())
        tally.reference += len(refs)
        pairs = _pair(refs, mine)
        paired_refs = {id(a) for a, _ in pairs}
        paired_mine = {id(b) for _, b in pairs}
        for ref, mine_one in pairs:
            common = ref.leaves & mine_one.leaves
            tally.matched += 1
            tally.elements += sum(ref.leaves.values())
            tally.reproduced += sum(common.values())
            for (path, _), count in (ref.leaves - mine_one.leaves).items():
                report.missing_elements[f"{kind} {path}"] += count
            for (path, _), count in (mine_one.leaves - ref.leaves).items():
                report.extra_elements[f"{kind} {path}"] += count
        for ref in refs:
            if id(ref) not in paired_refs:
                tally.missing += 1
                tally.elements += sum(ref.leaves.values())
                report.missing_resources[f"{kind} {_code(ref.body)}"] += 1
        for mine_one in mine:
            if id(mine_one) not in paired_mine:
                tally.extra += 1
                report.extra_resources[f"{kind} {_code(mine_one.body)}"] += 1


def _pair(refs: list[Resource], mine: list[Resource]) -> list[tuple[Resource, Resource]]:
    """Pair greedily by shared elements; a pair must share its code when both have one."""
    scored = []
    for i, ref in enumerate(refs):
        for j, candidate in enumerate(mine):
            if _code(ref.body) != _code(candidate.body):
                continue
            score = sum((ref.leaves & candidate.leaves).values())
            scored.append((score, -i, -j, i, j))
    scored.sort(reverse=True)
    used_refs: set[int] = set()
    used_mine: set[int] = set()
    pairs = []
    for _, _, _, i, j in scored:
        if i in used_refs or j in used_mine:
            continue
        used_refs.add(i)
        used_mine.add(j)
        pairs.append((refs[i], mine[j]))
    return pairs


def _code(body: dict[str, Any]) -> str:
    code = body.get("code")
    if isinstance(code, dict):
        codings = code.get("coding") or [{}]
        return str(codings[0].get("code", "-"))
    return "-"


# -- running -------------------------------------------------------------------------------------


def cases(ada: Path, reference: Path) -> Iterator[tuple[Path, Path]]:
    """Yield (ADA file, reference folder) pairs; a file without a reference folder is kept too."""
    for path in sorted(ada.glob("*.xml")):
        yield path, reference / path.stem


def run(pairs: Iterable[tuple[Path, Path]], mappings_root: Path | None = None) -> Report:
    """Convert each ADA file and compare it with its reference folder."""
    converter = Converter(mappings_root)
    report = Report()
    for ada_file, folder in pairs:
        ours, problems = converter.convert(ada_file)
        report.quarantined.extend(problems)
        theirs = reference_resources(folder) if folder.is_dir() else []
        compare_case(report, _prepare(ada_file.stem, ours), _prepare(ada_file.stem, theirs))
    return report


def format_text(report: Report, top: int = 40) -> str:
    """Render the report as a table and the agreement figure."""
    lines = [f"{'profile':58} {'ref':>4} {'match':>5} {'miss':>4} {'extra':>5} "
             f"{'elements':>8} {'same':>6}"]
    for kind, t in sorted(report.profiles.items()):
        lines.append(f"{kind:58} {t.reference:4} {t.matched:5} {t.missing:4} {t.extra:5} "
                     f"{t.elements:8} {t.reproduced:6}")
    lines.append("")
    for title, counter in (("missing resources", report.missing_resources),
                           ("extra resources", report.extra_resources),
                           ("missing elements", report.missing_elements),
                           ("extra elements", report.extra_elements)):
        if counter:
            lines.append(f"{title}:")
            lines.extend(f"  {count:4}  {what}" for what, count in counter.most_common(top))
    for problem in report.quarantined:
        lines.append(f"quarantined: {problem}")
    lines.append(f"agreement: {report.reproduced}/{report.elements} reference elements "
                 f"reproduced = {report.agreement:.1%}")
    return "\n".join(lines)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``babyconnect conformance``."""
    parser = subparsers.add_parser(
        "conformance", help="compare converted ADA instances with reference FHIR output")
    parser.add_argument("--ada", type=Path, required=True, help="folder of ADA XML instances")
    parser.add_argument("--reference", type=Path, required=True,
                        help="folder with one sub-folder of reference FHIR XML per ADA file")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--mappings", type=Path, default=None, help="mapping tables folder")
    parser.add_argument("--top", type=int, default=40, help="how many differences to list")
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    report = run(cases(args.ada, args.reference), args.mappings)
    if args.format == "json":
        out = json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
    else:
        out = format_text(report, args.top)
    import sys

    sys.stdout.write(out + "\n")
    return 0


def both_use_cases(corpus: Path) -> list[tuple[Path, Path]]:
    """Return the (ADA file, reference folder) pairs of every use case under ``corpus``."""
    pairs: list[tuple[Path, Path]] = []
    for use_case in sorted(p for p in corpus.iterdir() if (p / "ada_instance").is_dir()):
        pairs.extend(cases(use_case / "ada_instance", use_case / "fhir_instance"))
    return pairs


def use_cases(corpus: Path) -> dict[str, list[tuple[Path, Path]]]:
    """Return the (ADA file, reference folder) pairs of each use case under ``corpus``, by name."""
    return {use_case.name: cases(use_case / "ada_instance", use_case / "fhir_instance")
            for use_case in sorted(p for p in corpus.iterdir() if (p / "ada_instance").is_dir())}


def markdown_rows(report: Report) -> list[tuple[str, int, int, int, int, int]]:
    """Return per profile: (``Type: profile``, reference, matched, missing, elements, same)."""
    return [(kind.replace("|", ": "), t.reference, t.matched, t.missing, t.elements, t.reproduced)
            for kind, t in sorted(report.profiles.items()) if t.reference]
