"""The monitor's core: ingest, sequence, store, clustering, patterns, faults, engine, daemon."""
