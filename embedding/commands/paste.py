"""``embed paste``: fitted or edited faces back into the photos they were aligned from.

    embed align photos/ --out aligned/                       # aligned/<stem>.png and its record <stem>.json
    embed fit --config recipes/reconstruct.yaml --data.images aligned/ --trainer.default_root_dir runs/mine
    embed paste runs/mine/latents/*.pt --out pasted/        # pasted/<photo stem>.png, every face of each photo

Each RESULT (an image, or a latents file rendered with its own generator) finds its alignment
record by its stem: beside it, in its run's input folders, in ``--records`` folders, or given by
``--record``. Results that fail are reported and skipped; the exit status is non-zero only when
nothing was pasted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from embedding.faces.paste import MATCH_COLOUR

    parser = argparse.ArgumentParser(prog="embed paste", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="aligned-size images or latents files (.pt, .npz)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the whole photos, <photo stem>.png")
    parser.add_argument("--record", action="append", type=Path,
                        help="the alignment record of each result, in order (given once per result)")
    parser.add_argument("--records", action="append", type=Path, default=[],
                        help="a folder of alignment records to look in (repeatable)")
    parser.add_argument("--mask", choices=("face", "square"), default="face",
                        help="face: the landmarks' hull and forehead; square: the aligned square (default face)")
    parser.add_argument("--feather", type=float, default=None,
                        help="width of the mask's soft border in photo pixels (default 4%% of the aligned square)")
    parser.add_argument("--match-colour", action=argparse.BooleanOptionalAction, default=MATCH_COLOUR,
                        help="shift the pasted face's mean colour to the photo's along the mask border "
                             f"(default {'on' if MATCH_COLOUR else 'off'})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``embed paste``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.record and len(args.record) != len(args.results):
        parser.error(f"--record given {len(args.record)} times for {len(args.results)} results: once per result")
    from embedding.faces.paste import paste

    report = paste(args.results, args.out, args.record, args.records, args.mask, args.feather, args.match_colour)
    for result, reason in report.failures:
        print(f"skipped {result}: {reason}", file=sys.stderr)
    for path in report.written:
        print(f"wrote {path}", file=sys.stderr)
    print(f"pasted {len(args.results) - len(report.failures)} of {len(args.results)} result(s) "
          f"into {len(report.written)} photo(s) in {args.out}", file=sys.stderr)
    return 0 if report.written else 1


if __name__ == "__main__":
    sys.exit(main())
