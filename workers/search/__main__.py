"""``python -m workers.search``: see ``workers.search.cli``."""

from workers.search.cli import main

raise SystemExit(main())
