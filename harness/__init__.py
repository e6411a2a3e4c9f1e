"""attnspec: spec-conformance tests and a grading harness for attention exercises."""

__version__ = "0.1.0"
