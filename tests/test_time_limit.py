"""interop/time_limit.py: a wall-clock limit on Python code in this thread (from_torch stops a torch.export
whose symbolic shape reasoning runs too long)."""
import time

import pytest

from tinydl.interop.time_limit import OverTimeLimit, time_limit


def _spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(100))


def test_python_work_past_the_limit_is_interrupted():
    t0 = time.perf_counter()
    with pytest.raises(OverTimeLimit):
        with time_limit(0.2) as limit:
            _spin(30)
    assert limit.expired
    assert time.perf_counter() - t0 < 5


def test_work_within_the_limit_finishes_and_nothing_fires_later():
    with time_limit(0.3) as limit:
        _spin(0.05)
    assert not limit.expired
    _spin(0.6)  # past the limit: an exception still pending would be raised here


def test_the_limit_fires_again_where_the_work_swallows_it():
    caught = []
    with pytest.raises(OverTimeLimit):
        with time_limit(0.1, repeat_s=0.1):
            while True:
                try:
                    _spin(30)
                except Exception as e:  # noqa: BLE001 - as code that catches everything does
                    caught.append(type(e))
                    if len(caught) == 2:
                        raise
    assert caught == [OverTimeLimit, OverTimeLimit]


def test_no_limit():
    with time_limit(None) as limit:
        _spin(0.2)
    assert not limit.expired
