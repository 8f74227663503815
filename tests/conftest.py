import numpy as np
import pytest

import cpuformer as cf


@pytest.fixture(autouse=True)
def _seed():
    cf.manual_seed(1234)
    np.random.seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(42)
