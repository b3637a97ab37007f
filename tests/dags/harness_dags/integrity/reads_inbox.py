"""Toy DAG that builds one task per inbox file at parse time: must be caught.

Listing the inbox at parse time makes the DAG's shape depend on when it was parsed, and reads a
folder of patient files from the dag-processor. Dynamic task mapping does this at run time.
"""

from __future__ import annotations

import os

from airflow.sdk import dag, task

INBOX = os.environ.get("BABYCONNECT_INBOX", "/nonexistent-inbox")


@dag(dag_id="harness_reads_inbox", schedule=None, catchup=False)
def harness_reads_inbox() -> None:
    """One task per file found while parsing."""

    for index, _name in enumerate(sorted(os.listdir(INBOX))):

        @task(task_id=f"convert_{index}")
        def convert() -> None:
            return None

        convert()


harness_reads_inbox()
