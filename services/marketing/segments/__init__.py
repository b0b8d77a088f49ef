"""Segments: rule trees over the member 360 and the journal, compiled to SQL, materialised in
versions."""
