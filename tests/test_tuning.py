"""Autotuning (tinydl.tuning): each new GEMM shape's candidate variants timed on the GPU, the fastest kept in
memory and in a cache file per adapter. The choice logic runs against a fake timer (deterministic); real
tuning runs on small shapes with few candidates, and its results must still equal torch's."""
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinydl
import tinydl.nn.functional as F
from tinydl import tuning
from tinydl.debug import count_kernels
from tinydl.runtime import get_runtime
from tinydl.kernels import gemm
from tinydl.testing import assert_close


@pytest.fixture
def tuned(monkeypatch, use_options, tmp_path):
    """Tuning on, its cache in a fresh directory, few candidates (each costs a compile on lavapipe)."""
    monkeypatch.setenv(tuning.CACHE_ENV, str(tmp_path))
    use_options(tune_splits=(1, 2, 4), tune_tiles=("tile32", "tile64", "tile64x64t128"), tune_rounds=2,
                tune_warm_seconds=0.0)
    tuning.enable()
    yield tmp_path / "tuning.json"
    tuning.enable(False)


def fake_timer(monkeypatch, times: dict, default: float = 5.0) -> list:
    """tuning's GPU timing replaced by a table (tile, split) -> seconds per run; returns the list of the variants
    built (each one once)."""
    built = []

    def race(choices, bench, done, opts=None):
        for c in choices:
            if c not in done:
                built.append(c)
                done[c] = [], c
        return {c: times.get(c, default) for c in choices}
    monkeypatch.setattr(tuning, "_race", race)
    monkeypatch.setattr(tuning.get_runtime(), "release", lambda gpu: None, raising=False)
    return built


def linear_op(rng):
    x, w = rng.standard_normal((64, 128), dtype=np.float32), rng.standard_normal((48, 128), dtype=np.float32)
    return x, w, lambda: F.linear(tinydl.tensor(x), tinydl.tensor(w)).relu()


def test_tuning_is_off_unless_asked():
    opts = tinydl.options.current()
    assert not tuning.enabled() and not opts.tune and not tinydl.options.DEFAULT.tune
    assert tinydl.schedule.chooser(opts) is tinydl.schedule.RULES
    assert tinydl.schedule.chooser(opts.replace(tune=True)) is tuning.TUNER


@pytest.fixture
def own_choices(monkeypatch):
    """The measured choices (gemm.TUNED) of this test only: none before, none left after."""
    monkeypatch.setattr(tuning, "_loaded_for", [None])
    before = dict(gemm.TUNED)
    gemm.TUNED.clear()
    yield
    gemm.TUNED.clear()
    gemm.TUNED.update(before)


def test_tune_is_an_option_for_a_block(rng, tmp_path, monkeypatch, own_choices):
    """`with tinydl.options(tune=True)` tunes inside only; the plans made with and without it never mix."""
    monkeypatch.setenv(tuning.CACHE_ENV, str(tmp_path))
    measured = fake_timer(monkeypatch, {("tile64", 4): 2.0, ("tile64", 2): 1.0})
    x, w, op = linear_op(rng)
    tinydl.schedule.clear_cache()
    with count_kernels() as before:
        op().numpy()
    assert measured == [] and before.count == 1, before.names  # the rules: one kernel
    with tinydl.options(tune=True):
        assert tuning.enabled()
        with count_kernels() as inside:
            y = op().numpy()
    assert measured and inside.count == 2 and "[tile64]" in inside.names[0], inside.names  # split in 2
    assert_close(y, TF.linear(torch.from_numpy(x), torch.from_numpy(w)).relu(), rtol=1e-4, atol=1e-4)
    plans = tinydl.debug.stats["plans"]
    with count_kernels() as after:
        op().numpy()
    assert not tuning.enabled() and after.names == before.names and tinydl.debug.stats["plans"] == plans
    assert len(tinydl.schedule._plans) == 2  # one per chooser


def test_fastest_candidate_is_used_and_saved(rng, tuned, monkeypatch):
    # tile64's first try (4 slices: as many as fill the GPU) ranks it among the best tiles; then its other splits
    measured = fake_timer(monkeypatch, {("tile64", 4): 2.0, ("tile64", 2): 1.0})
    x, w, op = linear_op(rng)
    with count_kernels() as c:
        y = op().numpy()
    # split 2: the product in two K slices, then their sum (which takes the relu)
    assert c.count == 2 and "[tile64]" in c.names[0] and "reduce_sum+relu" in c.names[1], c.names
    assert_close(y, TF.linear(torch.from_numpy(x), torch.from_numpy(w)).relu(), rtol=1e-4, atol=1e-4)
    label = "f32 batch 1: 64 x 48 x 128 plain"
    assert tuning.choices() == {label: ("tile64", 2)}
    assert ("tile64", 2) in measured and len(set(measured)) == len(measured)  # nothing timed twice
    entry = json.loads(tuned.read_text())["adapters"][tuning._adapter_key()][label]
    assert (entry["tile"], entry["split"], entry["us"]) == ("tile64", 2, 1e6)


def test_rules_kept_unless_clearly_beaten(rng, tuned, monkeypatch):
    rule = (gemm.rule_tile(1, 64, 48, 128), gemm.rule_split(gemm.rule_tile(1, 64, 48, 128), 1, 64, 48, 128, 128))
    fake_timer(monkeypatch, {rule: 1.0, ("tile32", 4): 0.99})  # 1 % faster: within the noise
    *_, op = linear_op(rng)
    op().numpy()
    assert list(tuning.choices().values()) == [rule]


def test_cached_choice_needs_no_measuring(rng, tuned, monkeypatch):
    fake_timer(monkeypatch, {("tile32", 4): 1.0})
    x, w, op = linear_op(rng)
    op().numpy()
    tuning.enable()  # as a new process: nothing in memory, the file read again
    measured = fake_timer(monkeypatch, {})
    with count_kernels() as c:
        y = op().numpy()
    assert measured == [] and "[tile32]" in c.names[0] and c.count == 2, c.names
    assert_close(y, TF.linear(torch.from_numpy(x), torch.from_numpy(w)).relu(), rtol=1e-4, atol=1e-4)


def test_other_adapters_entries_are_kept_not_used(rng, tuned, monkeypatch):
    label = "f32 batch 1: 64 x 48 x 128 plain"
    other = {"format": tuning.FORMAT, "adapters": {"another GPU": {label: {"tile": "tile32", "split": 4}}}}
    tuned.write_text(json.dumps(other))
    tuning.enable()
    measured = fake_timer(monkeypatch, {("tile64", 1): 1.0})
    *_, op = linear_op(rng)
    op().numpy()
    assert measured and tuning.choices() == {label: ("tile64", 1)}
    saved = json.loads(tuned.read_text())["adapters"]
    assert saved["another GPU"][label]["tile"] == "tile32" and tuning._adapter_key() in saved


def test_corrupt_cache_warns_and_is_measured_again(rng, tuned, monkeypatch):
    tuned.write_text("{ not json")
    tuning.enable()
    fake_timer(monkeypatch, {("tile64", 1): 1.0})
    *_, op = linear_op(rng)
    with pytest.warns(UserWarning, match="ignoring the tuning cache .*tuning.json"):
        op().numpy()
    assert list(tuning.choices().values()) == [("tile64", 1)]
    assert json.loads(tuned.read_text())["format"] == tuning.FORMAT  # rewritten whole


def test_unwritable_cache_warns_and_keeps_the_choice(rng, tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv(tuning.CACHE_ENV, str(blocker / "sub"))  # a directory inside a file cannot be made
    tuning.enable()
    try:
        fake_timer(monkeypatch, {("tile32", 4): 1.0})
        *_, op = linear_op(rng)
        with pytest.warns(UserWarning, match="cannot write the tuning cache"):
            op().numpy()
        assert list(tuning.choices().values()) == [("tile32", 4)]
    finally:
        tuning.enable(False)


def test_failing_variant_is_not_a_candidate(rng):
    def bench():
        raise RuntimeError("this variant cannot run here")
    assert tuning._race([("tile32", 1)], bench, {}) == {("tile32", 1): float("inf")}
    x = tinydl.tensor(rng.standard_normal((8, 8), dtype=np.float32))
    times = tuning._race([("tile32", 1), ("no such tile", 1)], lambda: x @ x, {})
    assert 0 < times[("tile32", 1)] < float("inf") and times[("no such tile", 1)] == float("inf")


def test_environment_switch(monkeypatch):
    """TINYDL_TUNE sets the default Options.tune (read once, at import: here read again)."""
    monkeypatch.setenv(tuning.ENV, "maybe")
    with pytest.raises(ValueError, match="TINYDL_TUNE='maybe': expected 1 .tune GEMM variants on this GPU. or 0"):
        tinydl.options._from_environment()
    monkeypatch.setenv(tuning.ENV, "0")
    assert not tinydl.options._from_environment().tune
    monkeypatch.setenv(tuning.ENV, "1")
    assert tinydl.options._from_environment().tune


def test_enable_sets_the_option_from_here_on(use_options, own_choices):
    use_options()  # whatever enable() sets is undone after the test
    tuning.enable()
    assert tinydl.options.current().tune and tuning.enabled()
    tuning.enable(False)
    assert not tinydl.options.current().tune and not tuning.enabled()


def test_candidates_respect_the_shape():
    # tap-major slices keep whole K steps of 16 channels: 32 channels split in 2 at most
    cands = gemm.tuning_candidates(1, 64, 196, 32 * 9, 32, gather="tap")
    assert all(set(s) <= {1, 2} for s in cands.values()), cands
    # slices keep 32+ of K, and the split must divide it; tiles wider than twice the output are left out
    cands = gemm.tuning_candidates(1, 16, 16, 96, 96)
    assert set(cands) == {"tile32"} and sorted(cands["tile32"]) == [1, 2, 3], cands
    # a tile's first try is the split that fills the GPU (TARGET_WORKGROUPS) as the rules would
    cands = gemm.tuning_candidates(1, 512, 512, 4096, 4096)
    assert cands["tile64"][0] == 4 and cands["tile128"][0] == 16, cands  # 64 and 16 tiles


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_tuned_model_matches_torch(rng, tuned, dtype):
    """Real tuning (timed on this adapter) of a small conv net's convs and linear; whatever it picks is exact."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(32, 32, 1), torch.nn.Flatten(), torch.nn.Linear(32 * 8 * 8, 10)).eval()
    x = rng.standard_normal((2, 3, 16, 16), dtype=np.float32)
    tm = tinydl.from_torch(net, example_inputs=(torch.from_numpy(x),))
    if dtype == np.float16:
        net, tm = net.half(), tm.half()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cache trouble expected
        y = tm(tinydl.tensor(x.astype(dtype))).numpy()
    ref = net(torch.from_numpy(x.astype(dtype))).float()
    tol = 1e-4 if dtype == np.float32 else 2e-2
    assert_close(y.astype(np.float32), ref, rtol=tol, atol=tol)
    labels = set(tuning.choices())
    f = "f16" if dtype == np.float16 else "f32"
    tuned_convs = {f"{f} batch 1: 32 x 128 x 144 tap-major", f"{f} batch 1: 32 x 128 x 32 plain"}
    if dtype == np.float16 and get_runtime().subgroup_matrix_f16:
        tuned_convs = set()  # these convs run on tensor-core tiles, which have no variants to time
    assert tuned_convs <= labels and labels, labels
