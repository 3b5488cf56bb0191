"""``python -m openai_vtab``: the same program as the ``openai-vtab`` command."""

import sys

from .shell import main

if __name__ == "__main__":
    sys.exit(main())
