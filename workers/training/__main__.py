"""``python -m workers.training``: see ``workers.training.cli``."""

import sys

from workers.training.cli import main

sys.exit(main())
