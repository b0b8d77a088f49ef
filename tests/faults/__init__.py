import pytest

# The checks live beside the tests; their asserts should explain themselves as the tests' do.
pytest.register_assert_rewrite("tests.faults.checks", "tests.invariants")
