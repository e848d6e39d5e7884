"""``python -m speckle_nb.devserver``."""

from __future__ import annotations

import sys

from .cli import run_devserver_cli

if __name__ == "__main__":
    sys.exit(run_devserver_cli())
