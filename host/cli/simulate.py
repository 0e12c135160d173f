"""`spasmwatch simulate`: write a scenario trace and its labels (or an evaluation suite)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.host.cli import argtypes
from spasmwatch.host.errors import UserError


def cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.simulator import scenarios

    if args.scenario != "suite" and args.scenario not in scenarios.SCENARIOS:
        raise UserError(
            f"unknown scenario {args.scenario!r}; choose from: "
            + ", ".join(sorted(scenarios.SCENARIOS)) + ", suite"
        )
    if args.posture:
        from spasmwatch.simulator.body_model import POSTURES

        if args.posture not in POSTURES and args.posture != "side":
            raise UserError(f"unknown posture {args.posture!r}; choose from: "
                            + ", ".join([*sorted(POSTURES), "side"]))
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder (-o names the output folder)")
    if args.scenario == "suite":
        targets = [folder / "suite_manifest.tsv"]
    else:
        trace = folder / (args.scenario + (".csv.gz" if args.gz else ".csv"))
        targets = [trace, folder / (args.scenario + ".labels.csv")]
    there = [t for t in targets if t.exists()]
    if there and not args.force:
        raise UserError(f"{there[0]}: already exists (choose another folder, or --force "
                        "to replace it)")
    try:
        if args.scenario == "suite":
            paths = scenarios.generate_suite(folder, seed=args.seed)
            out.write(f"wrote {len(paths)} traces to {args.output}\n")
            return 0
        kw: dict[str, Any] = {"rate_hz": args.rate, "range_g": args.range}
        if args.spasm_g is not None:
            kw["spasm_g"] = args.spasm_g
        if args.posture:
            kw["posture"] = args.posture
        path = scenarios.simulate_to_dir(args.scenario, folder, seed=args.seed, gz=args.gz,
                                         **kw)
    except OSError as exc:  # unwritable, full disk, a file where a folder should be
        where = exc.filename or folder
        raise UserError(f"{where}: cannot write: {exc.strerror or exc}") from None
    out.write(f"wrote {path}\n")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("simulate", help="write a scenario trace and its labels")
    s.add_argument("scenario", help="scenario name, or 'suite' for an evaluation set")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--seed", type=argtypes.SEED, default=0)
    s.add_argument("--rate", type=argtypes.RATE_HZ, default=100.0, help="sample rate in Hz")
    s.add_argument("--range", type=int, default=4, choices=(2, 4, 8, 16), help="range in g")
    s.add_argument("--posture", help="starting posture (supine, prone, left, right, ...)")
    s.add_argument("--spasm-g", type=argtypes.SPASM_G,
                   help="scale of spasm accelerations (assumption)")
    s.add_argument("--gz", action="store_true", help="write .csv.gz")
    s.add_argument("--force", action="store_true", help="replace files already there")
    s.set_defaults(func=cmd_simulate)
