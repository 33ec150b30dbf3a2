"""What every section of the stack configuration shares: strict camelCase keys, absolute paths."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Section(BaseModel):
    # Unknown keys are errors: a typo must never fall back silently to a default.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


def absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"'{value}' is not an absolute path; use a path starting with /")
    return value
