"""Reading user-supplied documents (catalogs, policies, study definitions) with one-line errors.

Every such file is parsed, then validated by a pydantic model; any problem becomes a single
``BadInputError`` naming the file, the field and the fix, never a traceback.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from autotune.core.errors import BadInputError

M = TypeVar("M", bound=BaseModel)


def read_document(path: Path, *, kind: str, fmt: Literal["json", "toml"], fix: str) -> dict[str, Any]:
    """Parse ``path`` as JSON or TOML; ``kind`` names the document, ``fix`` says what to do."""
    try:
        text = path.read_text()
    except OSError as e:
        raise BadInputError(f"{kind} {path}: cannot read ({e.strerror}); {fix}") from e
    try:
        data = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise BadInputError(f"{kind} {path}: not JSON ({e.msg} at line {e.lineno}); {fix}") from e
    except tomllib.TOMLDecodeError as e:
        raise BadInputError(f"{kind} {path}: not valid TOML ({e}); {fix}") from e
    if not isinstance(data, dict):
        raise BadInputError(f"{kind} {path}: expected an object at the top level; {fix}")
    return data


def validate_document(model: type[M], data: dict[str, Any], path: Path, *, kind: str, fix: str) -> M:
    """Validate parsed data; the first problem is reported with its field path."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise BadInputError(f"{kind} {path}: {where}: {first['msg']}; {fix}") from e
