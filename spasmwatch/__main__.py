"""Allow ``python -m spasmwatch``."""

from spasmwatch.host.cli import main

raise SystemExit(main())
