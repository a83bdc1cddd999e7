"""The README's settings table names every setting the service reads, with its default."""

from __future__ import annotations

import re
from pathlib import Path

from nas_service.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    rows = re.findall(r"^\| `(NAS_[A-Z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$", README.read_text(), re.M)
    documented = {name for name, _, _ in rows}
    expected = {f"NAS_{field.upper()}" for field in Settings.model_fields}
    assert expected - documented == set(), "settings missing from the README's table"
    assert documented - expected == set(), "the README documents settings that do not exist"
    for name, default, meaning in rows:
        assert default.strip() and meaning.strip(), name
