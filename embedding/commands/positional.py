"""Several photos given where a command takes one list: ``embed encode a.png b.png c.png``.

jsonargparse reads a list argument from one token (``"[a.png, b.png]"``); shells hand over one
token per file, so the positional tokens of a command with a single list parameter are joined
into that list before parsing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

VALUELESS = frozenset({"-h", "--help", "--print_config"})


def join_positionals(args: Sequence[str], skip: int = 0) -> list[str]:
    """``args`` with every positional token after the first ``skip`` ones joined into one JSON list.

    Options are ``--key value`` or ``--key=value``; ``skip`` leaves a subcommand's name alone.
    Nothing changes when there is at most one positional token.
    """
    args = list(args)
    positions, i = [], skip
    while i < len(args):
        token = args[i]
        if token.startswith("-"):
            i += 1 if "=" in token or token in VALUELESS else 2
            continue
        positions.append(i)
        i += 1
    if len(positions) < 2:
        return args
    joined = json.dumps([args[i] for i in positions])
    kept = [token for i, token in enumerate(args) if i not in positions[1:]]
    kept[positions[0]] = joined
    return kept
