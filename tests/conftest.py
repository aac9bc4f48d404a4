import os
import tempfile

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _bounded_compile_caches():
    """A worker runs thousands of tests, each compiling kernels of its own: on lavapipe a compiled pipeline is a
    few MB of host memory, so the default caches (Options.pipeline_cache_size, plan_cache_size) would let two
    workers outgrow a 24 GB machine. Tests that count compiles stay within these."""
    import tinydl
    with tinydl.options(pipeline_cache_size=384, plan_cache_size=128):
        yield


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
