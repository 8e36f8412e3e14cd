"""`python -m simulator.cli ...`: the same as the `simpul-sim` console script."""

import sys

from simulator.cli import main

sys.exit(main())
