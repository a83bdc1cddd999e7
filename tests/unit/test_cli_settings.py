"""The data directory rule behind ``nas serve`` and the store commands: one absolute folder,
never the current directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas_service.settings import Settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("NAS_DATA_DIR", "NAS_DATABASE_URL", "NAS_OPTUNA_STORAGE", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_the_default_is_per_user_and_absolute(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    s = Settings()
    assert s.data_dir == home / ".local" / "share" / "nas"
    assert s.database_url == f"sqlite:///{home}/.local/share/nas/nas.sqlite"
    assert s.optuna_storage == f"sqlite:///{home}/.local/share/nas/optuna.sqlite"
    env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().data_dir == tmp_path / "xdg" / "nas"
    env.setenv("XDG_DATA_HOME", "relative/xdg")  # invalid per the XDG spec: ignored
    assert Settings().data_dir == home / ".local" / "share" / "nas"


def test_an_explicit_data_dir_is_made_absolute_once(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("NAS_DATA_DIR", "var")
    s = Settings()
    assert s.data_dir == tmp_path / "var"
    assert s.database_url == f"sqlite:///{tmp_path}/var/nas.sqlite"
    env.setenv("NAS_DATA_DIR", "~/nas-data")
    assert Settings().data_dir == tmp_path / "home" / "nas-data"
    given = Settings(data_dir=tmp_path / "x", database_url="postgresql+psycopg://u@h/db")
    assert given.data_dir == tmp_path / "x"
    assert given.database_url == "postgresql+psycopg://u@h/db"
    assert given.optuna_storage == "postgresql+psycopg://u@h/db_optuna"


def test_the_dispatcher_reads_back_every_setting_nas_serve_passes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nas serve`` hands its resolved settings to the dispatcher as NAS_ variables: each one,
    lists included, must read back as the same value (a list once killed the dispatcher)."""
    from nas_service.cli_serve import child_env
    from nas_service.settings import Settings

    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NAS_DATASET_ROOTS", json.dumps([str(tmp_path / "sets")]))
    settings = Settings()
    for k, v in child_env(settings).items():
        if k.startswith("NAS_"):
            monkeypatch.setenv(k, v)
    assert Settings() == settings
    assert Settings().dataset_roots == [tmp_path / "sets"]
