"""Model tests start from one fixed seed each, so that a test's outcome never depends on test order or luck."""

import pytest


@pytest.fixture(autouse=True)
def _fixed_seed():
    import tf_keras as keras

    keras.utils.set_random_seed(1234)
    yield
