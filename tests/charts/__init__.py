"""The Helm charts, linted and rendered with the real helm (tests/charts/support.py)."""

import pytest

# The shared helpers' asserts (render, named, assert_valid_and_hardened) report like a test's own.
pytest.register_assert_rewrite("tests.charts.support", "tests.charts.validation")
