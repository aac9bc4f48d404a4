"""tinydl.distributed.Predictor on a local Ray instance: 2 CPU actors (lavapipe), a tiny model, a few rows.
Ray Data's results equal the single-process run row for row; a batch that fails raises, no row is lost."""
import os
import sys

import numpy as np
import pytest
import torch

try:
    import ray
    import ray.data
except ModuleNotFoundError:
    ray = None

from tinydl.distributed import Predictor

ROWS, BATCH, WORKERS = 13, 4, 2  # 13 rows: the last batch is short and gets padded
LABELS = [f"class{i}" for i in range(5)]


def test_ray_is_installed_in_ci():
    """CI installs the `test` extra, which has ray: skipping the Ray tests there would hide them."""
    if ray is None and os.environ.get("CI"):
        pytest.fail("ray is not installed, but CI is set: the `test` extra must install ray[data]")


pytestmark_ray = pytest.mark.skipif(ray is None, reason="ray is not installed (pip install 'tinydl[ray]')")


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 5))


def fail_on_row_7(x, row_id):
    if (row_id == 7).any():
        raise ValueError("bad input in row 7")
    return x


def rows():
    x = np.random.default_rng(0).standard_normal((ROWS, 3, 8, 8)).astype(np.float32)
    return x, np.arange(ROWS)


@pytest.fixture(scope="module")
def local_ray():
    # the test module's functions travel by value: Ray's workers do not have tests/ on their path
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # Ray counts logical CPUs: one per actor, and one left for Ray Data's own tasks
    ray.init(num_cpus=WORKERS + 1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def predict(**kwargs):
    x, ids = rows()
    ds = ray.data.from_items([{"x": x[i], "id": ids[i]} for i in range(ROWS)])
    return ds.map_batches(Predictor, fn_constructor_kwargs=dict(model=tiny_model, pad_to=BATCH, **kwargs),
                          compute=ray.data.ActorPoolStrategy(size=WORKERS), batch_size=BATCH, num_cpus=1)


@pytestmark_ray
def test_ray_equals_single_process(local_ray):
    got = sorted(predict(inputs="x", top_k=2, labels=LABELS).take_all(), key=lambda r: r["id"])
    x, ids = rows()
    local = Predictor(tiny_model, inputs="x", top_k=2, labels=LABELS, pad_to=BATCH)
    want = [local({"x": x[i:i + BATCH], "id": ids[i:i + BATCH]}) for i in range(0, ROWS, BATCH)]
    want = {k: np.concatenate([w[k] for w in want]) for k in want[0]}
    assert [r["id"] for r in got] == list(range(ROWS))
    assert sorted(got[0]) == ["id", "label", "logits", "top_k_ids", "top_k_scores"]  # x is not passed through
    # the same kernels on the same rows: identical values, whichever actor and batch a row ran in
    np.testing.assert_array_equal(np.stack([r["logits"] for r in got]), want["logits"])
    np.testing.assert_array_equal(np.stack([r["top_k_ids"] for r in got]), want["top_k_ids"])
    np.testing.assert_array_equal(np.stack([r["top_k_scores"] for r in got]), want["top_k_scores"])
    assert [r["label"] for r in got] == list(want["label"])
    with torch.no_grad():  # and the single-process run is torch's
        np.testing.assert_allclose(want["logits"], tiny_model().eval()(torch.from_numpy(x)).numpy(),
                                   rtol=1e-4, atol=1e-5)


@pytestmark_ray
def test_failing_batch_raises(local_ray):
    ds = predict(inputs=("x", "id"), preprocess=fail_on_row_7)
    with pytest.raises(Exception, match="bad input in row 7") as err:
        ds.take_all()
    assert "ValueError" in str(err.value) or isinstance(err.value, ValueError)
