"""When a nightly study is due, and the state that remembers its last runs.

The timer (systemd or cron) only wakes ``autotune nightly run`` up; whether a definition is
due is decided here from its ``schedule.every_hours`` and the last start recorded in the data
directory, so a missed night (machine off) runs at the next wake-up and a run that crashed is
not retried in a tight loop.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kernel_runtime.paths import data_dir
from studies.definition import StudyDefinition

# Timers fire a little early or late; a run due "every 24 h" must not skip a night for that.
SLACK = timedelta(minutes=10)


def nightly_dir() -> Path:
    path = data_dir() / "nightly"
    path.mkdir(parents=True, exist_ok=True)
    return path


def study_dir(name: str) -> Path:
    """Per-definition outputs: policies, reports, the best policy and the history."""
    path = nightly_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_path() -> Path:
    return nightly_dir() / "state.json"


def load_state() -> dict[str, dict[str, Any]]:
    try:
        data: dict[str, dict[str, Any]] = json.loads(_state_path().read_text())
        return data
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}


def update_state(name: str, **fields: Any) -> None:
    """Merge ``fields`` into ``name``'s entry and write atomically (temp file, rename)."""
    state = load_state()
    state[name] = {**state.get(name, {}), **fields}
    tmp = _state_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, _state_path())


def now() -> datetime:
    return datetime.now(UTC)


def is_due(definition: StudyDefinition, state: dict[str, dict[str, Any]], at: datetime) -> bool:
    last = state.get(definition.name, {}).get("last_started")
    if last is None:
        return True
    every = timedelta(hours=definition.schedule.every_hours)
    return at - datetime.fromisoformat(last) >= every - SLACK


def next_due(definition: StudyDefinition, state: dict[str, dict[str, Any]]) -> str:
    last = state.get(definition.name, {}).get("last_started")
    if last is None:
        return "now"
    when = datetime.fromisoformat(last) + timedelta(hours=definition.schedule.every_hours)
    return when.isoformat(timespec="minutes")


def append_history(name: str, record: dict[str, Any]) -> None:
    """One JSON line per night: the drift check and verdict, kept for trend reading."""
    with open(study_dir(name) / "history.jsonl", "a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
