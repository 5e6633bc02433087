"""``python -m fnas_env`` runs the ``fnas`` command."""

import sys

from fnas_env.cli import main

if __name__ == "__main__":
    sys.exit(main())
