"""The measuring scripts the GPU box runs work end to end (on lavapipe, their quick forms): a script that breaks
here would cost a device call to find out."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ab_of_a_tree_against_itself():
    done = _run("benchmarks.ab", "--base", str(ROOT), "--models", "resnet18", "--batches", "1", "--rounds", "1",
                "--calls", "2", "--quick", "--env-b", "TINYDL_SPIN_WAIT_MS=0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"B = {ROOT}, B with TINYDL_SPIN_WAIT_MS=0;" in done.stdout, done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("resnet18"))
    fields = row.split()
    assert len(fields) == 6 and fields[-1] == "0", row  # timed on both sides; the same tree gives the same output


def test_ab_sides_take_their_own_environment():
    """--env-b reaches the B side's workers only: a bad setting there fails B's worker, named in the row."""
    done = _run("benchmarks.ab", "--base", str(ROOT), "--models", "resnet18", "--batches", "1", "--rounds", "1",
                "--calls", "1", "--quick", "--env-b", "TINYDL_SPIN_WAIT_MS=fast")
    assert done.returncode == 1 and "worker exited" in done.stdout, done.stdout + done.stderr
    assert "TINYDL_SPIN_WAIT_MS='fast'" in done.stderr  # B's traceback
    bad = _run("benchmarks.ab", "--base", str(ROOT), "--env-a", "NOEQUALS")
    assert bad.returncode == 2 and "'NOEQUALS': expected NAME=VALUE" in bad.stderr


def test_ab_refuses_a_folder_without_tinydl(tmp_path):
    done = _run("benchmarks.ab", "--base", str(tmp_path), "--models", "resnet18")
    assert done.returncode == 2
    assert f"{tmp_path} holds no tinydl/ package" in done.stderr


def test_ab_reports_a_failing_tree(tmp_path):
    (tmp_path / "tinydl").mkdir()
    (tmp_path / "tinydl" / "__init__.py").write_text("raise ImportError('a broken tree')\n")
    done = _run("benchmarks.ab", "--base", str(tmp_path), "--models", "resnet18", "--batches", "1", "--rounds", "1",
                "--calls", "1", "--quick")
    assert done.returncode == 1
    assert "worker exited" in done.stdout


def test_first_call_cold_and_warm():
    done = _run("benchmarks.first_call", "--models", "resnet18", "--batches", "1", "--quick", "--compile-threads", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| resnet18 (3 compile threads) | 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert all(float(c) > 0 for c in cells[2:]), row


def test_kernel_times_plans_under_an_option():
    done = _run("benchmarks.kernel_times", "--models", "resnet18", "--quick", "--copies", "1", "--runs", "1",
                "--warm", "0", "--top", "100", "--option", "force_split_k=1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== resnet18 batch 1 force_split_k=1: " in done.stdout
    sums = [line for line in done.stdout.splitlines() if line.startswith("reduce_sum")]
    assert [line.split()[0] for line in sums] == ["reduce_sum+mul"]  # the pool's mean only: no split GEMM's slices


def test_generate_times_an_option_beside_the_defaults():
    """benchmarks.generate --option: the tinydl rows again under a planning option, in turns, in one process."""
    done = _run("benchmarks.generate", "--tiny", "--models", "tinyllama", "--batches", "1", "--new", "3",
                "--runs", "1", "--no-fp16", "--option", "stats_in_gemv=true", "--rounds", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    engines = [" ".join(line.split()[2:-2]) for line in done.stdout.splitlines() if line.startswith("tinyllama")]
    assert engines[1:] == ["tinydl fp32", "tinydl fp32 stats_in_gemv=True"] * 2, engines


def test_generate_runs_a_state_space_model():
    """benchmarks.generate --models mamba: its greedy tokens checked against torch's, then timed."""
    done = _run("benchmarks.generate", "--tiny", "--models", "mamba", "--batches", "1", "--new", "3", "--runs", "1",
                "--no-fp16")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [" ".join(line.split()[2:-2]) for line in done.stdout.splitlines() if line.startswith("mamba")] == \
        ["torch cpu", "tinydl fp32"], done.stdout


def test_run_takes_a_torchvision_name_outside_its_table(tmp_path):
    """benchmarks.run --models NAME: a torchvision classifier not in the table runs too (its fp32 and fp16
    columns; torch CUDA fp16 where CUDA is)."""
    done = _run("benchmarks.run", "--models", "mobilenet_v3_small", "--batches", "1", "--runs", "1", "--quick",
                "--no-ort", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torch CUDA fp16 ms" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("mobilenet_v3_small"))
    assert "Error" not in row, row


def test_sweep_of_the_matrix_tiles_in_float16():
    """benchmarks.sweep --half: float16 products under each forced matrix tile (the rules' tiles on an adapter
    without subgroup matrices), a row each."""
    done = _run("benchmarks.sweep", "--half", "--quick", "--splits", "auto", "--tiles", "auto", "mma128w8",
                "--runs", "1", "--copies", "2", "--warm", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if "mma128w8" in line and "Error" not in line]
    assert len(rows) >= 2, done.stdout
