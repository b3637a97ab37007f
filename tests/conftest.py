"""Shared test setup: paths to the project, its samples and the shared public corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CORPUS = ROOT.parent / "shared" / "corpus"

pytest_plugins = [
    "tests.support.fhir_server",
    "tests.support.validation_corpus",
    "tests.support.airflow_env",
    "tests.support.services",
    "tests.support.chromium",
]


def corpus_path(*parts: str) -> Path:
    """Return a path in ../shared/corpus, skipping the test when the corpus is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public corpus not present at {path} (see README, 'Test data')")
    return path


@pytest.fixture
def id_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fixed id key, so that golden files are stable."""
    key = "test-key-not-secret-0123456789abcdef"
    monkeypatch.setenv("BABYCONNECT_ID_KEY", key)
    return key
