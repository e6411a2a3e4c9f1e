"""attnspec: spec-conformance tests and a grading harness for attention exercises."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# The grader's own NumPy runs single-threaded, as the workers run learner code: the reference's
# time (time limits, `time_factor`) is then measured as the learner's is, and a multi-threaded
# BLAS spinning on a machine busy with case processes cannot make a 20 ms reference take 0.5 s.
# Only before NumPy is imported (later it has no effect), never over a value already set, and
# not in an interactive kernel (a learner's notebook loading the check magic keeps its BLAS).
if "numpy" not in _sys.modules and "IPython" not in _sys.modules:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ.setdefault(_var, "1")


def check(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Grade the exercise functions as defined in the running kernel now (see attnspec.notebook_check.check)."""
    from .notebook_check import check as check_kernel

    return check_kernel(*args, **kwargs)


def load_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """`%load_ext attnspec`: registers the `%attnspec_check` magic used by the starter notebooks."""
    from .notebook_check import load_ipython_extension as load

    load(ipython)
