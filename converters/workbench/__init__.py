"""The mapping authors' workbench (issue 8): explain one record, test mappings, measure coverage.

Everything here converts with ``Engine(..., trace=True)``; the pipeline's own runs keep tracing
off. Values appear only on the author's own terminal (``explain``), never in logs or reports.
"""
