"""The studies' tests use tiny models too: the model tests' fixed seed and one thread."""

from tests.models.conftest import _seed_and_one_thread  # noqa: F401  (an autouse fixture)
