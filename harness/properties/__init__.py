"""Grading properties: named, reusable checks parameterised from the YAML spec.

Importing this package registers every property in `PROPERTIES` (name -> PropertyInfo).
Instructors add their own with `attnspec.plugins.register_property` (docs/plugins.md).
"""

from . import exact, heads, masks, relations, stack, structure, values  # noqa: F401  (registration side effect)
from .base import PROPERTIES, CaseAborted, CaseContext, Failed, Observation, PropertyInfo, fail

__all__ = ["PROPERTIES", "CaseAborted", "CaseContext", "Failed", "Observation", "PropertyInfo", "fail"]

