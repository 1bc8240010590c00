"""Optuna storage: SQLite under the user's data directory unless a URL is given."""

from __future__ import annotations

import optuna

from autotune.core.errors import BadInputError
from kernel_runtime.paths import data_dir


def storage_url(url: str | None) -> str:
    return url or f"sqlite:///{data_dir() / 'studies.db'}"


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """An RDB storage; a bad URL or missing driver becomes a one-line error."""
    resolved = storage_url(url)
    try:
        return optuna.storages.RDBStorage(resolved, heartbeat_interval=None)
    except (ImportError, ModuleNotFoundError) as e:
        raise BadInputError(f"storage {resolved!r}: driver missing ({e}); for PostgreSQL "
                            "'pip install psycopg2-binary'") from e
    except Exception as e:  # sqlalchemy raises many types for bad URLs and refused connections
        raise BadInputError(f"storage {resolved!r}: cannot open ({type(e).__name__}: {e})") from e


def load_study(name: str, url: str | None) -> optuna.Study:
    """An existing study by name, or a one-line error listing the known names."""
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise BadInputError(f"no study {name!r} in {storage_url(url)}; known: "
                            f"{', '.join(known) or 'none (run autotune run first)'}") from None
