"""`spasmwatch simulate`: write a scenario trace and its labels (or an evaluation suite)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.host.errors import UserError


def cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.simulator import scenarios

    if args.scenario == "suite":
        paths = scenarios.generate_suite(Path(args.output), seed=args.seed)
        out.write(f"wrote {len(paths)} traces to {args.output}\n")
        return 0
    if args.scenario not in scenarios.SCENARIOS:
        raise UserError(
            f"unknown scenario {args.scenario!r}; choose from: "
            + ", ".join(sorted(scenarios.SCENARIOS)) + ", suite"
        )
    kw: dict[str, Any] = {"rate_hz": args.rate, "range_g": args.range}
    if args.spasm_g is not None:
        kw["spasm_g"] = args.spasm_g
    if args.posture:
        kw["posture"] = args.posture
    path = scenarios.simulate_to_dir(
        args.scenario, Path(args.output), seed=args.seed, gz=args.gz, **kw
    )
    out.write(f"wrote {path}\n")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("simulate", help="write a scenario trace and its labels")
    s.add_argument("scenario", help="scenario name, or 'suite' for an evaluation set")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rate", type=float, default=100.0, help="sample rate in Hz")
    s.add_argument("--range", type=int, default=4, choices=(2, 4, 8, 16), help="range in g")
    s.add_argument("--posture", help="starting posture (supine, prone, left, right, ...)")
    s.add_argument("--spasm-g", type=float, help="scale of spasm accelerations (assumption)")
    s.add_argument("--gz", action="store_true", help="write .csv.gz")
    s.set_defaults(func=cmd_simulate)
