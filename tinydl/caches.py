"""What is kept on disk across processes to make first calls faster: tinydl's own tuning cache, and the GPU
drivers' shader caches (which tinydl does not write itself: the driver fills them while compiling pipelines).
Where each lives, how big it is, and how to clear it (`tinydl cache`, `tinydl cache clear`)."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cache:
    name: str
    path: Path
    what: str
    driver: bool  # the driver's, shared with every program using it: cleared only when asked for explicitly

    def size(self) -> int:
        if self.path.is_file():
            return self.path.stat().st_size
        if self.path.is_dir():
            return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return 0

    def clear(self) -> None:
        if self.path.is_dir():
            shutil.rmtree(self.path)
        elif self.path.exists():
            self.path.unlink()


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache")


def caches() -> list[Cache]:
    """tinydl's tuning cache, then the driver caches that exist (or that their variables point to)."""
    from . import tuning
    found = [Cache("tinydl tuning", tuning.cache_file(), "measured GEMM variants per adapter (TINYDL_TUNE=1; "
                   "TINYDL_CACHE_DIR moves it)", False)]
    mesa = os.environ.get("MESA_SHADER_CACHE_DIR", "").strip()
    mesa_dirs = [Path(mesa)] if mesa else [_user_cache() / "mesa_shader_cache", _user_cache() / "mesa_shader_cache_db"]
    nvidia = os.environ.get("__GL_SHADER_DISK_CACHE_PATH", "").strip()
    nvidia_dirs = [Path(nvidia)] if nvidia else [_user_cache() / "nvidia" / "GLCache", Path.home() / ".nv" / "GLCache"]
    for name, dirs, what in (
            ("Mesa shader cache", mesa_dirs, "lavapipe's compiled kernels (MESA_SHADER_CACHE_DIR moves it, "
             "MESA_SHADER_CACHE_DISABLE=true turns it off, MESA_SHADER_CACHE_MAX_SIZE bounds it)"),
            ("NVIDIA shader cache", nvidia_dirs, "the NVIDIA driver's compiled pipelines (__GL_SHADER_DISK_CACHE_PATH "
             "moves it, __GL_SHADER_DISK_CACHE=0 turns it off, __GL_SHADER_DISK_CACHE_SIZE bounds it)")):
        for d in dirs:
            if d.exists() or d == dirs[0] and len(dirs) == 1:
                found.append(Cache(name, d, what, True))
    return found
