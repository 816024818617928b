"""`python -m lstmgen` is the `lstmgen` command."""

import sys

from .cli import main

sys.exit(main())
