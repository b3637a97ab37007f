"""Test helpers shared across the suite: a real FHIR server, a fault-injecting proxy."""
