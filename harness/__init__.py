"""attnspec: spec-conformance tests and a grading harness for attention exercises."""

__version__ = "0.1.0"


def check(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Grade the exercise functions as defined in the running kernel now (see attnspec.notebook_check.check)."""
    from .notebook_check import check as check_kernel

    return check_kernel(*args, **kwargs)


def load_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """`%load_ext attnspec`: registers the `%attnspec_check` magic used by the starter notebooks."""
    from .notebook_check import load_ipython_extension as load

    load(ipython)
