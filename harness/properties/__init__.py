"""Grading properties: named, reusable checks parameterised from the YAML spec.

Importing this package registers every property in `PROPERTIES` (name -> PropertyInfo).
Instructors add their own with `register_property` (harness/plugins.py, docs/plugins.md).
"""

from . import heads, masks, relations, stack, structure, values  # noqa: F401  (registration side effect)
from .base import PROPERTIES, CaseAborted, CaseContext, Failed, Observation, PropertyInfo, fail

__all__ = ["PROPERTIES", "CaseAborted", "CaseContext", "Failed", "Observation", "PropertyInfo", "fail", "register_property"]


def __getattr__(name: str) -> object:
    # The plugin API (docs/plugins.md), from harness/plugins.py, which imports this package.
    if name == "register_property":
        from ..plugins import register_property

        return register_property
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
