"""Service settings, read from the environment (prefix ``NAS_``) at entry points.

Nothing here connects anywhere: a ``Settings`` object is built once by an entry point (API
server, dispatcher, admin command, tests) and passed down.

The data directory (``NAS_DATA_DIR``) holds the embedded SQLite store, uploads, runs and
exports. It never depends on the current directory: by default it is the per-user
``$XDG_DATA_HOME/nas`` (``~/.local/share/nas`` when ``XDG_DATA_HOME`` is unset), and a relative
``NAS_DATA_DIR`` is made absolute once, when the settings are read, so ``nas serve``, the
dispatcher it starts and the admin commands (``nas keys ...``) all name the same store.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


def default_data_dir() -> Path:
    """The per-user data directory: ``$XDG_DATA_HOME/nas``, else ``~/.local/share/nas``."""
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "nas"


def absolute_dir(path: Path) -> Path:
    """``~`` expanded and made absolute (against the current directory, once, here)."""
    return Path(os.path.abspath(path.expanduser()))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAS_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="the SQLite store (by default), datasets, runs and artifacts",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file under data_dir (quick start)",
    )
    optuna_storage: str = Field(
        default="",
        description=(
            "Optuna RDB URL; empty derives one that never shares our tables: a sibling "
            "database '<name>_optuna' on PostgreSQL, or data_dir/optuna.sqlite"
        ),
    )
    ray_address: str | None = Field(default=None, description="None starts a local Ray")

    # API limits (a user can only ask for what these allow).
    # An upload is streamed to disk and converted chunk by chunk: the limit is on the file, not
    # on memory (a 50,000-image 32x32x3 .npz is 185 MB; the CIFAR-10 archive 170 MB).
    max_upload_bytes: int = Field(
        default=1024 * 1024 * 1024, gt=0, description="largest dataset upload (bytes)"
    )
    max_uncompressed_bytes: int = Field(default=4 * 1024 * 1024 * 1024, gt=0)
    max_compression_ratio: float = Field(default=200.0, gt=1.0)
    max_zip_members: int = Field(default=200_000, gt=0)
    # Server-side folders under which a dataset may be registered by path (POST
    # /api/v1/datasets/register), e.g. NAS_DATASET_ROOTS='["/srv/datasets"]'. Empty: off.
    dataset_roots: list[Path] = Field(
        default_factory=list,
        description="folders a dataset may be registered from by path (empty: registration off)",
    )
    max_budget: int = Field(default=5000, gt=0)
    max_population: int = Field(default=1000, gt=1)
    max_epochs_scale: float = Field(default=10.0, gt=0)
    max_jobs_per_key_running: int = Field(default=4, gt=0)
    page_size_max: int = Field(default=500, gt=0)

    # Liveness of running jobs.
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    stale_after_s: float = Field(default=60.0, gt=0)
    # A running job whose runner reports no progress (stage, epoch, batch) for this long is
    # failed, saying why; a training epoch on a large dataset on CPU must report within it.
    stall_after_s: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=3, gt=0)
    export_retry_after_s: int = Field(default=2, gt=0)

    # Polling is the dashboard's hot path: a key lookup and a rendered job / Pareto front are
    # reused for this long inside one API process (cancel and retry drop them at once).
    auth_cache_s: float = Field(default=5.0, ge=0)
    poll_cache_s: float = Field(default=1.0, ge=0)

    # Training on the cluster (services.capacity, workers.runtime.ray_engine).
    capacity_every_s: float = Field(
        default=30.0, gt=0, description="how often a dispatcher records the cluster's capacity"
    )
    capacity_max_age_s: float = Field(
        default=600.0, gt=0, description="an older capacity report is ignored at submit"
    )
    train_max_workers: int = Field(
        default=8, ge=1, description="limit on resources.workers without a capacity report"
    )
    train_max_gpus_per_worker: float = Field(
        default=0.0, ge=0, description="limit on GPUs per worker without a capacity report"
    )
    train_checkpoint_every_s: float | None = Field(
        default=300.0, gt=0, description="mid-epoch training checkpoints, by time"
    )
    train_checkpoint_every_steps: int | None = Field(
        default=None, gt=0, description="mid-epoch training checkpoints, by steps"
    )
    # Ray token authentication for a cluster started with `ray start --head` (Ray >= 2.52
    # enables it whenever a token exists): the token file every client and node uses. Empty
    # means Ray's own lookup (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).
    ray_auth_token_path: Path | None = Field(default=None)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, gt=0, lt=65536)

    @model_validator(mode="after")
    def _derive_urls(self) -> Settings:
        self.data_dir = absolute_dir(self.data_dir)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'nas.sqlite'}"
        if not self.optuna_storage:
            self.optuna_storage = derive_optuna_storage(self.database_url, self.data_dir)
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def derive_optuna_storage(database_url: str, data_dir: Path) -> str:
    """Optuna creates its own tables (``studies``, ``trials``...): keep them out of our schema."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{data_dir / 'optuna.sqlite'}"
    return url.set(database=f"{url.database}_optuna").render_as_string(hide_password=False)
