"""Toy module in a DAGs folder that mentions a dag but defines none: must be caught."""

from __future__ import annotations

from airflow.sdk import dag  # noqa: F401  (imported, never used to define a DAG)

DESCRIPTION = "helpers for a dag that lives elsewhere"
