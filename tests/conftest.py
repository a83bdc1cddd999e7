"""Suite-wide settings. Folder conftests add their own fixtures (database, Ray, trained nets)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Two cores on CI: a test process must not fan out over more threads than there are cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
