import os
import tempfile

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def rng():
    """A fresh seeded generator per test, so failures reproduce."""
    return np.random.default_rng(1234)


@pytest.fixture
def runtime():
    from tinydl.runtime import get_runtime
    return get_runtime()


@pytest.fixture
def use_options():
    """use_options(knob=value, ...): tinydl.options(...) for the rest of the test (restored after it)."""
    import contextlib

    import tinydl
    with contextlib.ExitStack() as stack:
        yield lambda **changes: stack.enter_context(tinydl.options(**changes))
