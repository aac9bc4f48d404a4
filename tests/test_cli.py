"""The `tinydl` command (tinydl/cli/) through typer's CliRunner on this machine's adapter (lavapipe in CI): every
command's output and exit code, and every error's message. Models come from tests/cli_factories.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tinydl
from tinydl import webgpu
from tinydl.cli import app

HERE = Path(__file__).parent
TINY = f"{HERE / 'cli_factories.py'}:tiny"


@pytest.fixture
def cli(monkeypatch):
    """cli(*args) -> the Result of `tinydl args...` run in this process, from tests/ (so `cli_factories:NAME`
    imports by module path)."""
    monkeypatch.chdir(HERE)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_help_lists_the_commands_with_examples(cli):
    res = cli("--help")
    assert res.exit_code == 0
    for command in ("info", "compare", "bench", "profile", "cache"):
        assert command in res.output
    assert "tinydl compare torchvision:resnet50" in res.output
    assert "tinydl compare timm:convnext_tiny --dtype float16" in cli("compare", "--help").output


def test_version_is_the_package_version_and_pyproject_version(cli):
    import tomllib
    project = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
    assert tinydl.__version__ == project["version"]
    assert cli("--version").output.strip() == f"tinydl {tinydl.__version__}"


def test_python_dash_m_tinydl_runs_the_command():
    res = subprocess.run([sys.executable, "-m", "tinydl", "--version"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert res.returncode == 0 and res.stdout.strip() == f"tinydl {tinydl.__version__}"


# -- info --------------------------------------------------------------------------------------------------
def test_info_names_adapters_choice_features_limits_and_cache(cli):
    res = cli("info")
    assert res.exit_code == 0, res.output
    info = tinydl.device_info()
    for text in ("index", "name", "backend", "type", "driver", info["adapter"], "runs on: ", "why: ",
                 "shader-f16", "subgroup", "timestamp-query", "largest storage binding", "storage buffers per kernel",
                 "tuning cache: ", str(tinydl.tuning.cache_file())):
        assert text in res.output, text
    assert f"{info['limits']['max-storage-buffer-binding-size']})" in res.output


def test_info_json_is_the_same_as_data(cli, monkeypatch):
    monkeypatch.setenv("TINYDL_ADAPTER", "0")
    d = json.loads(cli("info", "--json").output)
    assert d["chosen"] == 0 and d["why"].startswith("TINYDL_ADAPTER=0")
    assert {"index", "name", "backend", "type", "driver"} <= set(d["adapters"][0])
    assert set(d["features"]) == {"shader-f16", "subgroup", "subgroups", "chromium-experimental-subgroup-matrix",
                                  "timestamp-query"}
    assert d["webgpu"] == webgpu.canonical(None)  # TINYDL_BACKEND's, wgpu-native when unset
    assert d["limits"]["max-storage-buffer-binding-size"] > 0 and d["tuning_cache"].endswith("tuning.json")


def test_info_without_an_adapter_says_what_to_install(cli, monkeypatch):
    monkeypatch.setattr(tinydl.adapter, "list_adapters", lambda backend=None: [])
    res = cli("info")
    assert res.exit_code == 1
    assert "Error: tinydl found no WebGPU adapter" in res.output and "mesa-vulkan-drivers" in res.output


def test_info_with_a_wrong_tinydl_adapter_lists_the_adapters(cli, monkeypatch):
    monkeypatch.setenv("TINYDL_ADAPTER", "99")
    res = cli("info")
    assert res.exit_code == 1
    assert "Error: TINYDL_ADAPTER=99: only " in res.output and " adapters: 0: " in res.output


# -- compare -----------------------------------------------------------------------------------------------
def test_compare_passes_with_exit_0(cli):
    res = cli("compare", "cli_factories:tiny", "--input-shape", "2,3,8,8")
    assert res.exit_code == 0, res.output
    assert "cli_factories:tiny (tinydl float32 vs torch CPU float32): 1 output(s)" in res.output
    assert "PASS" in res.output and "output  2x2" in res.output


def test_compare_by_file_path_and_in_float16(cli):
    res = cli("compare", TINY, "-s", "1x3x8x8", "--dtype", "float16")
    assert res.exit_code == 0, res.output
    assert "(tinydl float16 vs torch CPU float32)" in res.output and "rtol=0.01, atol=0.01: PASS" in res.output


def test_compare_fails_with_exit_1_when_outputs_differ(cli):
    res = cli("compare", "cli_factories:Drifting", "-s", "2,3")
    assert res.exit_code == 1
    assert "FAIL" in res.output and "6 of 6 differ" in res.output


def test_compare_fails_when_the_tolerance_is_too_tight(cli):
    """The same model passes at float16's default tolerance and fails at one far below float16's error."""
    assert cli("compare", "cli_factories:tiny", "-s", "2,3,8,8", "--dtype", "float16").exit_code == 0
    res = cli("compare", "cli_factories:tiny", "-s", "2,3,8,8", "--dtype", "float16", "--rtol", "0", "--atol", "1e-9")
    assert res.exit_code == 1 and "FAIL" in res.output


def test_compare_with_named_inputs_from_npz_and_safetensors(cli, tmp_path):
    from safetensors.numpy import save_file
    x, ids = np.random.default_rng(0).random((4, 6), dtype=np.float32), np.array([0, 3, 1])
    np.savez(tmp_path / "in.npz", x=x, ids=ids)
    save_file({"x": x, "ids": ids}, str(tmp_path / "in.safetensors"))
    for name in ("in.npz", "in.safetensors"):
        res = cli("compare", "cli_factories:TwoInputs", "--example-inputs", tmp_path / name)
        assert res.exit_code == 0, res.output
        assert "2 output(s)" in res.output and "[0]     3x3" in res.output


@pytest.mark.parametrize("shape, why", [("1,3,a", "'1,3,a': expected comma-separated positive integers"),
                                        ("1,0,4", "'1,0,4': expected"), ("", "'': expected"),
                                        ("-1,3", "'-1,3': expected")])
def test_compare_bad_shape_says_what_a_shape_is(cli, shape, why):
    res = cli("compare", "cli_factories:tiny", "--input-shape", shape)
    assert res.exit_code == 2
    assert "Invalid value for --input-shape" in res.output and why in res.output
    assert "such as 1,3,224,224" in res.output


@pytest.mark.parametrize("spec, why", [
    ("nocolon", "'nocolon' is not MODULE:FACTORY (e.g. torchvision:resnet50"),
    ("no_such_module_xyz:build", "cannot import 'no_such_module_xyz': no module named 'no_such_module_xyz'"),
    ("cli_factories:tinyy", "cli_factories has no 'tinyy' (did you mean tiny?)"),
    ("cli_factories:NOT_A_MODEL", "cli_factories:NOT_A_MODEL is of type 'int', not a factory"),
    ("cli_factories:a_list", "cli_factories:a_list gave a list, not a torch.nn.Module"),
    ("missing_file.py:build", "no such file: missing_file.py"),
    ("torchvision:resnet5", "torchvision has no model 'resnet5' (did you mean resnet50"),
    ("timm:convnext_tinyy", "timm has no model 'convnext_tinyy' (did you mean convnext_tiny"),
])
def test_compare_bad_model_says_why(cli, spec, why):
    res = cli("compare", spec, "-s", "1,3")
    assert res.exit_code == 2
    assert "Invalid value for MODEL" in res.output and why in res.output


def test_compare_timm_without_timm_says_how_to_install(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    res = cli("compare", "timm:convnext_tiny")
    assert res.exit_code == 1
    assert "Error: timm:NAME needs timm, which is not installed: pip install timm" in res.output


def test_compare_of_a_model_tinydl_cannot_convert_names_the_ops(cli):
    res = cli("compare", "cli_factories:Determinant", "-s", "2,3,3")
    assert res.exit_code == 1
    assert "Error: " in res.output and "linalg_det" in res.output and "Traceback" not in res.output


def test_compare_factory_needs_a_shape_or_inputs(cli, tmp_path):
    res = cli("compare", "cli_factories:tiny")
    assert res.exit_code == 2 and "this model needs it" in res.output and "--example-inputs" in res.output
    np.savez(tmp_path / "x.npz", x=np.zeros(3, np.float32))
    res = cli("compare", "cli_factories:tiny", "-s", "1,3", "--example-inputs", tmp_path / "x.npz")
    assert res.exit_code == 2 and "give --input-shape or --example-inputs, not both" in res.output


def test_compare_refuses_pickles_and_other_files(cli, tmp_path):
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    (tmp_path / "x.pt").write_bytes(b"")
    for name, why in (("objects.npz", "Object arrays cannot be loaded when allow_pickle=False"),
                      ("x.pt", "expected a .safetensors or .npz file"), ("absent.npz", "no such file")):
        res = cli("compare", "cli_factories:TwoInputs", "--example-inputs", tmp_path / name)
        assert res.exit_code == 2 and "Invalid value for --example-inputs" in res.output and why in res.output


# -- profile and bench -------------------------------------------------------------------------------------
def test_profile_prints_the_table_and_writes_one_trace_event_per_kernel(cli, tmp_path):
    import cli_factories
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16), dtype=np.float32)
    tm = tinydl.from_torch(cli_factories.tiny().eval())
    tm(tinydl.tensor(x))
    with tinydl.debug.count_kernels() as forward:
        tm(tinydl.tensor(x))
    res = cli("profile", "cli_factories:tiny", "-s", "2,3,16,16", "--trace", tmp_path / "trace.json")
    assert res.exit_code == 0, res.output
    assert f"{forward.count} kernels; GPU" in res.output and "TFLOP/s" in res.output
    assert f"Chrome trace of {forward.count} kernels: {tmp_path / 'trace.json'}" in res.output
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert sorted(e["name"] for e in events) == sorted(forward.names)
    assert all(e["ph"] == "X" and e["ts"] >= 0 and e["dur"] >= 0 for e in events)
    starts = sorted(e["ts"] for e in events)
    assert starts[0] == 0 and all(a["ts"] + a["dur"] <= b["ts"] + 1e-3 for a, b in
                                  zip(sorted(events, key=lambda e: e["ts"]), sorted(events, key=lambda e: e["ts"])[1:]))


def test_profile_trace_without_timestamp_queries_lays_kernels_end_to_end():
    from tinydl import profiler
    from tinydl.schedule.plan import KernelStep
    steps = [KernelStep(None, 0, [], (1, 1, 1), name, "", flops, 0) for name, flops in (("a", 1), ("b", 3))]
    with profiler.profile() as p:
        profiler.record(steps, [], 0.0, 0.004, False, started_s=10.0)
    trace = p.chrome_trace()
    got = [(e["name"], round(e["ts"], 6), round(e["dur"], 6)) for e in trace["traceEvents"]]
    assert got == [("a", 0.0, 1000.0), ("b", 1000.0, 3000.0)]
    assert "no timestamp queries" in trace["otherData"]["tinydl"]


def test_bench_prints_columns_kernels_and_profile(cli):
    res = cli("bench", "cli_factories:tiny", "-s", "2,3,8,8", "--runs", "2")
    assert res.exit_code == 0, res.output
    assert "cli_factories:tiny batch 2 on " in res.output and "median of 2 runs" in res.output
    assert "kernels per forward" in res.output
    for column in ("tinydl", "tinydl float16", "torch CPU", "median ms", "max abs err vs torch CPU"):
        assert column in res.output
    assert "kernel" in res.output and "calls" in res.output  # the profile table
    assert "ORT-WebGPU" not in res.output or __import__("importlib").util.find_spec("onnxruntime")


def test_bench_named_model_takes_no_shape(cli):
    res = cli("bench", "resnet18", "-s", "1,3,8,8")
    assert res.exit_code == 2 and "resnet18 makes its own inputs: use --batch / --quick" in res.output


def test_bench_plot_without_matplotlib_says_how_to_install(cli, monkeypatch):
    from tinydl.bench import plot
    monkeypatch.setattr(plot, "available", lambda: False)
    res = cli("bench", "cli_factories:tiny", "-s", "1,3,8,8", "--plot", "chart.png")
    assert res.exit_code == 1
    assert "Error: --plot needs matplotlib, which is not installed: pip install 'tinydl[bench]'" in res.output


# -- cache -------------------------------------------------------------------------------------------------
def test_cache_lists_and_clears_tinydls_files_and_the_driver_cache_only_when_asked(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TINYDL_CACHE_DIR", str(tmp_path / "tinydl"))
    monkeypatch.setenv("MESA_SHADER_CACHE_DIR", str(tmp_path / "mesa"))
    (tmp_path / "tinydl").mkdir()
    (tmp_path / "tinydl" / "tuning.json").write_text("{}")
    (tmp_path / "mesa" / "ab").mkdir(parents=True)
    (tmp_path / "mesa" / "ab" / "entry").write_bytes(b"x" * 100)
    res = cli("cache")
    assert res.exit_code == 0
    assert str(tmp_path / "tinydl" / "tuning.json") in res.output and str(tmp_path / "mesa") in res.output
    res = cli("cache", "clear")
    assert res.exit_code == 0 and f"removed tinydl tuning: {tmp_path / 'tinydl' / 'tuning.json'}" in res.output
    assert not (tmp_path / "tinydl" / "tuning.json").exists() and (tmp_path / "mesa" / "ab" / "entry").exists()
    res = cli("cache", "clear", "--driver")
    assert res.exit_code == 0 and f"removed Mesa shader cache: {tmp_path / 'mesa'}" in res.output
    assert not (tmp_path / "mesa").exists()
