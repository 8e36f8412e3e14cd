"""`python -m agent.cli ...`: the same as the `simpul-agent` console script."""

import sys

from agent.cli import main

sys.exit(main())
