"""`python -m borderx.cli`, as the `borderx` console script."""

import sys

from borderx.cli import main

sys.exit(main())
