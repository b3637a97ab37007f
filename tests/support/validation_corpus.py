"""Fixtures for the validation tests: Nictiz's published FHIR instances, read once per session.

Register as a pytest plugin (``pytest_plugins = ["tests.support.validation_corpus"]``) or import
the fixtures. The corpus is never copied into the repository: it is read from ``../shared/corpus``
and the tests that need it are skipped when it is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from converters.validation.fhirxml import xml_to_resource
from converters.validation.placeholders import normalise_placeholders

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / ".." / "shared" / "corpus"
NICTIZ_FHIR = CORPUS / "nictiz-peri326-fhir"
STU3_EXAMPLES = CORPUS / "geboortezorg-stu3-examples"


def corpus_files() -> list[Path]:
    """List the Nictiz FHIR instances (XML) that the validator must accept."""
    files = sorted(NICTIZ_FHIR.glob("**/fhir_instance/**/*.xml"))
    return files + sorted(STU3_EXAMPLES.glob("**/*.xml"))


def read_instance(path: Path) -> dict[str, Any]:
    """Read one corpus instance with its date placeholders normalised."""
    return xml_to_resource(normalise_placeholders(path.read_text(encoding="utf-8")).encode())


@pytest.fixture(scope="session")
def corpus_instances() -> list[tuple[str, dict[str, Any]]]:
    """Return (path relative to the corpus, resource) for every corpus instance."""
    if not NICTIZ_FHIR.is_dir() or not STU3_EXAMPLES.is_dir():
        pytest.skip("public corpus ../shared/corpus (Nictiz FHIR instances) is not present")
    return [(str(p.relative_to(CORPUS)), read_instance(p)) for p in corpus_files()]
