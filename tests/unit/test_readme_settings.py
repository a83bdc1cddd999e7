"""The README's settings table names every setting the service reads, with its default."""

from __future__ import annotations

import re
from pathlib import Path

from nas_service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    rows = re.findall(r"^\| `(NAS_[A-Z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$", README.read_text(), re.M)
    documented = {name for name, _, _ in rows}
    expected = {f"NAS_{field.upper()}" for field in Settings.model_fields}
    assert expected - documented == set(), "settings missing from the README's table"
    # A documented name that is no Settings field must be an environment variable the code
    # reads itself (a worker process's knob).
    code = "\n".join(
        f.read_text() for d in ("nas_service", "workers") for f in (ROOT / d).rglob("*.py")
    )
    unknown = {n for n in documented - expected if f'"{n}"' not in code}
    assert unknown == set(), "the README documents settings that do not exist"
    for name, default, meaning in rows:
        assert default.strip() and meaning.strip(), name
