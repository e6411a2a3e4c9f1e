import os

import pytest
from hypothesis import settings

from attnspec.loader import load_spec
from attnspec.runner import WorkerPool

settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Realistic-size cases (those with a time_factor) cost seconds of grading each: our own tests
# leave them out of the shipped spec unless a test asks for them (tests/test_realistic_sizes.py).
os.environ.setdefault("ATTNSPEC_SKIP_TIMED_CASES", "1")


# Shared by the test modules that grade with the shipped spec and a plain worker pool; a module
# that needs another spec (its own folder) or pool (torch preloaded) defines its own.
@pytest.fixture(scope="module")
def spec():
    return load_spec()


@pytest.fixture(scope="module")
def pool():
    with WorkerPool() as p:
        yield p
