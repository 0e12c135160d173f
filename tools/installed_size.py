"""Disk space of the installed packages in this environment (run with the venv's python).

    python tools/installed_size.py [--top 10]

Sums, per distribution, the files its RECORD lists (what ``pip install`` wrote: code,
compiled libraries, ``__pycache__`` as far as listed) and prints the total and the
largest ones in MB. The venv's own Python links and pip are not counted; ``du -sm
.venv`` gives the folder's full size.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path


def sizes() -> dict[str, int]:
    out: dict[str, int] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or "?"
        total = 0
        for f in dist.files or ():
            p = Path(str(dist.locate_file(f)))
            try:
                total += p.stat().st_size
            except OSError:
                pass
        out[name] = out.get(name, 0) + total
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--top", type=int, default=10, help="largest packages to list (10)")
    args = ap.parse_args(argv)
    s = sizes()
    mb = 1024 * 1024
    print(f"{sum(s.values()) / mb:.0f} MB in {len(s)} installed distributions "
          f"(Python {sys.version_info.major}.{sys.version_info.minor})")
    for name, n in sorted(s.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {n / mb:6.1f} MB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
