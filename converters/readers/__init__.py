"""Readers: turn one export file into a stream of :class:`converters.records.SourceRecord`."""
