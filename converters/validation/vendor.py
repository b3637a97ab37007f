"""Copy the Nictiz conformance resources into ``converters/profiles/`` as compact JSON.

Run once when the Nictiz packages change::

    python -m converters.validation.vendor ../shared/profiles

Only StructureDefinitions (profiles, extensions, data type profiles) and ValueSets are kept: the
validator needs nothing else. ``fhirmapping*.xml``, CapabilityStatements, ConceptMaps,
NamingSystems and SearchParameters are skipped. Narratives (``text``) and element ``mapping``
entries are dropped to keep the files small; every rule the validator reads stays.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from converters.validation.fhirxml import FhirXmlError, xml_to_resource

log = logging.getLogger(__name__)

PACKAGES = ("nictiz-zib2017-stu3", "nictiz-geboortezorg-stu3")  # zib first: the base package
KEPT_TYPES = frozenset({"StructureDefinition", "ValueSet"})
PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"


def vendor(source: Path, target: Path = PROFILES_DIR) -> dict[str, int]:
    """Convert the packages under ``source`` into ``target``; return counts per resource type."""
    counts: dict[str, int] = {}
    index: dict[str, dict[str, str]] = {}
    for package in PACKAGES:
        out_dir = target / package
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted((source / package / "profiles").rglob("*.xml")):
            resource = _read(path)
            if resource is None or resource["resourceType"] not in KEPT_TYPES:
                continue
            if resource["url"] in index:  # the same ValueSet shipped in both packages
                continue
            name = f"{resource['resourceType']}-{resource.get('id') or path.stem}.json"
            _write(out_dir / name, _compact(resource))
            index[resource["url"]] = _index_entry(resource, f"{package}/{name}")
            counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1
    _write(target / "index.json", dict(sorted(index.items())))
    _write(target / "referenced-extensions.json", _referenced_extensions(target, index))
    return counts


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return xml_to_resource(path.read_bytes())
    except FhirXmlError as exc:
        log.warning("skipped %s: %s", path.name, exc)
        return None


def _compact(resource: dict[str, Any]) -> dict[str, Any]:
    """Drop the narrative and the dataset mappings: the validator reads neither."""
    resource = {k: v for k, v in resource.items() if k not in ("text", "mapping")}
    for part in ("differential", "snapshot"):
        for element in resource.get(part, {}).get("element", []):
            element.pop("mapping", None)
    return resource


def _index_entry(resource: dict[str, Any], file: str) -> dict[str, str]:
    entry = {"file": file, "resourceType": resource["resourceType"]}
    if resource["resourceType"] == "StructureDefinition":
        entry["type"] = resource.get("type", "")
        entry["kind"] = resource.get("kind", "")
        entry["base"] = resource.get("baseDefinition", "")
    entry["version"] = str(resource.get("version", ""))
    return entry


def _referenced_extensions(target: Path, index: dict[str, dict[str, str]]) -> list[str]:
    """List extension URLs the profiles declare but whose definitions are not vendored.

    These are STU3 core extensions (``humanname-own-name``, ``patient-birthTime``): known, so not
    "unknown extension" findings, but their value types cannot be checked here.
    """
    referenced: set[str] = set()
    for entry in index.values():
        if entry["resourceType"] != "StructureDefinition":
            continue
        sd = json.loads((target / entry["file"]).read_text())
        for element in sd.get("differential", {}).get("element", []):
            for type_ in element.get("type", []):
                if type_.get("code") == "Extension" and type_.get("profile"):
                    referenced.add(type_["profile"])
    return sorted(referenced - set(index))


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Vendor the packages found in the folder given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding the Nictiz package folders")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    counts = vendor(args.source)
    log.info("vendored %s", ", ".join(f"{n} {t}" for t, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
