"""``python -m embedding.commands <command> ...`` runs ``embed <command> ...``."""

import sys

from embedding.commands import main

sys.exit(main())
