"""Optuna storage: SQLite under the user's data directory unless a URL is given."""

from __future__ import annotations

import optuna
import sqlalchemy

from autotune.core.errors import BadInputError
from kernel_runtime.paths import data_dir

# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the 'postgres' extra installs psycopg2,
# so a URL that names no driver gets the one the project installs.
POSTGRES_DRIVER = "postgresql+psycopg2"


def _resolve(url: str | None) -> sqlalchemy.engine.URL:
    try:
        parsed = sqlalchemy.engine.make_url(url or f"sqlite:///{data_dir() / 'studies.db'}")
    except sqlalchemy.exc.ArgumentError:
        raise BadInputError(f"storage {url!r} is not a SQLAlchemy URL; use e.g. "
                            "sqlite:///studies.db or postgresql://USER@HOST/DB") from None
    return parsed.set(drivername=POSTGRES_DRIVER) if parsed.drivername == "postgresql" else parsed


def storage_url(url: str | None) -> str:
    """The storage as shown to people (errors, policy evidence): never with its password."""
    return _resolve(url).render_as_string(hide_password=True)


def _first_line(e: Exception) -> str:
    """The driver's own error (SQLAlchemy wraps it), first line only: psycopg2 adds hints and links."""
    inner = getattr(e, "orig", None) or e
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0].strip() if lines else ''}"


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """An RDB storage; a bad URL, missing driver or unreachable server becomes a one-line error."""
    resolved = _resolve(url)
    shown = storage_url(url)
    try:
        return optuna.storages.RDBStorage(resolved.render_as_string(hide_password=False),
                                          heartbeat_interval=None)
    except (ImportError, ModuleNotFoundError) as e:
        raise BadInputError(f"storage {shown!r}: driver missing ({e}); for PostgreSQL "
                            "'pip install -e .[postgres]' (psycopg2-binary)") from e
    except Exception as e:  # sqlalchemy raises many types for bad URLs and refused connections
        raise BadInputError(f"storage {shown!r}: cannot open ({_first_line(e)}); check the URL and "
                            "that the database server is up and accepts you") from e


def load_study(name: str, url: str | None) -> optuna.Study:
    """An existing study by name, or a one-line error listing the known names."""
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise BadInputError(f"no study {name!r} in {storage_url(url)}; known: "
                            f"{', '.join(known) or 'none (run autotune run first)'}") from None
