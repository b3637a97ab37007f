"""Toy DAG that probes a server while being parsed, and hides the failure: must be caught.

The dag-processor parses every file every few seconds, so a connection here would hit the server
at that rate and stall parsing whenever the server is slow.
"""

from __future__ import annotations

import socket

from airflow.sdk import dag, task

try:
    with socket.create_connection(("127.0.0.1", 9), timeout=0.5):
        SERVER_UP = True
except OSError:
    SERVER_UP = False


@dag(dag_id="harness_opens_socket", schedule=None, catchup=False)
def harness_opens_socket() -> None:
    """Do nothing; the fault is at module level."""

    @task
    def noop() -> bool:
        return SERVER_UP

    noop()


harness_opens_socket()
