"""Allow ``python -m spasmwatch``."""

from spasmwatch.host.cli.main import main

raise SystemExit(main())
