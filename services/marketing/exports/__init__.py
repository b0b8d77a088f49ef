"""Exports of a segment's members as CSV, NDJSON or Parquet, on demand or on a schedule."""
