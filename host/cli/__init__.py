"""The `spasmwatch` command line: one module per command."""
