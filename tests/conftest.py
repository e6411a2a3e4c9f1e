import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Realistic-size cases (those with a time_factor) cost seconds of grading each: our own tests
# leave them out of the shipped spec unless a test asks for them (tests/test_realistic_sizes.py).
os.environ.setdefault("ATTNSPEC_SKIP_TIMED_CASES", "1")
