"""The ``python -m framework generate`` command: its arguments, and the released-PFNano flavour."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .anomalies import ANOMALIES
from .writer import generate

__all__ = ["main"]

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m framework generate --events 1000 --seed 1 sample.root``."""
    parser = argparse.ArgumentParser(
        prog="python -m framework generate",
        description="Generate AOD-like ttbar events (NanoAOD/PFNano naming) into a ROOT file.",
    )
    parser.add_argument("output", help="output ROOT file (written atomically)")
    parser.add_argument("--events", "-n", type=int, default=1000, help="number of events (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--run", type=int, default=1, help="run number (default 1)")
    parser.add_argument("--first-event", type=int, default=1,
                        help="event number of the first event (default 1); files read together need distinct "
                             "(run, lumi, event): give each its own --run or --first-event")
    parser.add_argument("--events-per-lumi", type=int, default=100, help="events per luminosity block")
    parser.add_argument("--compression", choices=("zlib", "lzma"), default="zlib")
    parser.add_argument("--level", type=int, default=1, help="compression level 1-9 (default 1)")
    parser.add_argument("--flavour", choices=("generated", "pfnano-released"), default="generated",
                        help="branch layout: this framework's schema (default) or PFNano as released "
                             "(no PFCands_fromPV/hcalFraction, JetPFCands_btagSip2d*; see README 'Real PFNano files')")
    dqm = parser.add_argument_group("luminosity sections for data-quality monitoring (framework/samples/lumi.py, anomalies.py)")
    dqm.add_argument("--lumis-per-run", type=int, default=None, metavar="K",
                     help="runs RUN, RUN+1, ... of K lumis each (event numbers restart per run); adds the "
                          "LuminosityBlocks tree")
    dqm.add_argument("--bad-lumis", default=None, metavar="LIST",
                     help="bad sections: LUMI (of every run) or RUN:LUMI, optionally =ANOMALY[+ANOMALY], "
                          "comma-separated, e.g. 3,7 or 2:3,2:9=dead-region; truth in the LuminosityBlocks tree")
    dqm.add_argument("--anomaly", default="met-tail", metavar="NAME",
                     help=f"anomaly of the bad sections that name none: {', '.join(ANOMALIES)} (default met-tail; "
                          "several joined by +)")
    dqm.add_argument("--branches", default=None, metavar="PATTERNS",
                     help="write only these branches (comma-separated globs, IDs always), e.g. 'MET_*,Jet_eta,Jet_phi'; "
                          "'*' = all, with MET_sumEt and MET_significance")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    branches = [b.strip() for b in args.branches.split(",") if b.strip()] if args.branches is not None else None
    try:
        if args.flavour == "generated":
            generate(args.output, args.events, args.seed, run=args.run, events_per_lumi=args.events_per_lumi,
                     compression=args.compression, level=args.level, lumis_per_run=args.lumis_per_run,
                     bad_lumis=args.bad_lumis, anomaly=args.anomaly, branches=branches, first_event=args.first_event)
        elif args.lumis_per_run is not None or args.bad_lumis is not None or branches is not None:
            raise ValueError("--lumis-per-run, --bad-lumis and --branches need --flavour generated")
        else:
            from ..io.pfnano import write_released

            out = Path(args.output)
            tmp = out.parent / f".{out.name}.{os.getpid()}.generated.tmp"
            try:
                generate(tmp, args.events, args.seed, run=args.run, events_per_lumi=args.events_per_lumi,
                         compression=args.compression, level=args.level, first_event=args.first_event)
                write_released(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
    except (ValueError, OSError) as exc:
        log.error("generate failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
