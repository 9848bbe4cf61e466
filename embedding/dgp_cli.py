"""``embed dgp`` / ``embed-dgp``: the earlier DGP command, kept as an alias for one release.

    embed-dgp fit --config recipes/dgp_colorize.yaml     →  embed fit --config recipes/dgp_colorize.yaml
    embed-dgp jitter A.pt --count 8 --sigma 0.3 --out X  →  embed edit jitter A.pt --count 8 --sigma 0.3 --out X
    embed-dgp morph A.pt B.pt --steps 8 --out X          →  embed edit morph A.pt B.pt --frames 8 --out X

``fit`` takes ``DGPModule`` when the recipe names no ``model.class_path`` (recipes written for
this command); everything else is the new command's, and a warning names it.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("embedding")
RENAMED = {"--steps": "--frames"}


def translate(argv: list[str]) -> list[str]:
    """The ``embed`` arguments that do what ``embed-dgp <argv>`` did."""
    if not argv or argv[0] in ("-h", "--help"):
        return ["fit", "--help"]
    if argv[0] in ("jitter", "morph"):
        return ["edit", argv[0], *(RENAMED.get(a, a) for a in argv[1:])]
    return argv


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``embed-dgp`` and ``embed dgp``: run the ``embed`` command it stands for."""
    from .cli import main as embed

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = translate(argv)
    log.warning("embed-dgp is deprecated and will be removed in the next release; use: embed %s", " ".join(args))
    if args[0] == "fit":
        from .fit_cli import main as fit

        fit(args[1:], default_method="embedding.dgp.DGPModule")
        return
    code = embed(args)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
