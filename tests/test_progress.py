"""The progress bar while kernels compile (tinydl/progress.py): shown only where stderr is a terminal and
Options.progress is on (TINYDL_PROGRESS), counting a new plan's kernels; nothing printed otherwise."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import tinydl
from tinydl import progress
from tinydl.options import Options


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def terminal(monkeypatch, use_options):
    """terminal() -> stderr as a terminal from here on in the test (its text kept), bars shown at once. Called in
    the test itself: pytest's capture sets sys.stderr again when the test starts."""
    def use():
        term = Terminal()
        monkeypatch.setattr(sys, "stderr", term)
        use_options(progress_delay_s=0.0)
        return term
    return use


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(progress.bar(10, "compiling kernels", Options()), progress.Silent)


def test_bar_on_a_terminal_unless_switched_off(terminal):
    terminal()
    assert not isinstance(progress.bar(10, "compiling kernels", Options()), progress.Silent)
    assert isinstance(progress.bar(10, "compiling kernels", Options(progress=False)), progress.Silent)
    assert isinstance(progress.bar(0, "compiling kernels", Options()), progress.Silent)


@pytest.mark.parametrize("value, shown", [(None, True), ("1", True), ("0", False), ("off", False)])
def test_tinydl_progress_sets_the_default(value, shown):
    env = {k: v for k, v in os.environ.items() if k != "TINYDL_PROGRESS"}
    if value is not None:
        env["TINYDL_PROGRESS"] = value
    code = "import tinydl.options as o; print(o.DEFAULT.progress)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.stdout.strip() == str(shown), res.stderr


def test_tinydl_progress_refuses_other_values():
    env = dict(os.environ, TINYDL_PROGRESS="maybe")
    res = subprocess.run([sys.executable, "-c", "import tinydl"], capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "TINYDL_PROGRESS='maybe': expected 1" in res.stderr


def _new_graph():
    """Two kernels (a GEMM with its epilogue, a softmax) whose WGSL no other test compiles (constants are
    written into the shader)."""
    x = tinydl.tensor(np.arange(64, dtype=np.float32).reshape(8, 8))
    return (x.T @ x * 1.9753111 + (x * 0.8642137 + 0.1357913).sum(0)).softmax(-1) * 1.3571113


def test_a_new_plan_counts_its_kernels_on_a_terminal(terminal, runtime):
    terminal = terminal()
    with tinydl.debug.count_kernels() as c:
        _new_graph().numpy()
    text = terminal.getvalue()
    assert c.count == 2 and "tinydl: compiling kernels:   0%" in text and "0/2 [" in text
    if runtime.compiles_on_first_run:  # lavapipe: the first run is where its kernels compile
        assert "tinydl: first run, the driver compiles kernels" in text
    terminal.truncate(0)
    _new_graph().numpy()  # planned and run before: nothing to count
    assert terminal.getvalue().strip("\x00") == ""


def test_nothing_printed_when_switched_off(terminal, use_options):
    use_options(progress=False)
    terminal = terminal()
    x = tinydl.tensor(np.ones((4, 4), np.float32))
    ((x * 0.2468135).sum(1) + 0.3579246).numpy()
    assert terminal.getvalue() == ""
