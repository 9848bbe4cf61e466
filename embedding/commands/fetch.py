"""``embed fetch mobilestylegan-ffhq``: get a generator that cannot ship with the project into the user cache, once.

    embed fetch mobilestylegan-ffhq                      # pip downloads random-face 2021.7.21.1 (38 MB)
    embed fetch mobilestylegan-ffhq --wheel random_face-2021.7.21.1-py3-none-any.whl   # offline

The files are checked against their SHA-256, loaded once (which caches the mean latent), and the
licence terms are printed. Afterwards ``--model.generator mobilestylegan-ffhq`` works offline.
The cache is ``$STYLEGAN_EMBEDDING_CACHE``, else ``$XDG_CACHE_HOME/stylegan-embedding``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from embedding.checkpoints import CheckpointError, load_generator, mobilestylegan

log = logging.getLogger("embedding")


def main(argv: list[str] | None = None) -> int:
    """Fetch the named generator; exit code 1 with a message when the download or a check fails."""
    parser = argparse.ArgumentParser(prog="embed fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=[mobilestylegan.NAME], help="the generator to fetch")
    parser.add_argument("--wheel", type=Path, help="a random-face 2021.7.21.1 wheel already downloaded "
                                                   "(default: pip downloads it)")
    args = parser.parse_args(argv)
    print(mobilestylegan.LICENCE)
    try:
        where = mobilestylegan.fetch(args.wheel)
        generator = load_generator(args.name)
    except (OSError, CheckpointError) as e:
        log.error("%s", e)
        return 1
    log.info("%s is in %s: %d W+ rows, %d² images; use it with --model.generator %s", args.name, where,
             generator.num_ws, generator.resolution, args.name)
    return 0
