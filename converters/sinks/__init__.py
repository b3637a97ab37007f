"""Where converted bundles go: a FHIR server (``fhir_server``)."""
