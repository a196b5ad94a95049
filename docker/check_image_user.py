"""Inside an image, as a uid the image was not built for: can vLLM's CUDA kernels build and cache?

Run by docker/lib.sh (`check_any_uid`) with the image's own python, stdlib only, piped on stdin:
    docker run --rm -i --network none --user 4242:4242 --entrypoint python IMAGE - [--compile] < this
Checks, each printed as one `ok`/`FAIL` line:
  - HOME and the caches Triton, vLLM, FlashInfer, TorchInductor and XDG users write, each resolved as
    the tool itself resolves it where the tool is installed, are writable (a file is written in each);
  - with --compile: a C file including Python.h builds into a shared object as Triton builds its
    launcher at run time (triton.runtime.build._build: `cc SRC -O3 -shared -fPIC -Wno-psabi -I… -I<python
    include from sysconfig>`), on Triton's own driver.c where Triton is installed. Without a GPU there
    is no libcuda, so `-lcuda` and its `-L` are left out (a shared object links with undefined symbols).
Exit 1 when any check fails; 2 when run as uid 0 or 1000 (those have always worked) without --as-any-uid.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

PROBE_C = """#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyModuleDef probe = {PyModuleDef_HEAD_INIT, "probe", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_probe(void) { return PyModule_Create(&probe); }
"""


def installed(module: str) -> bool:
    """Whether MODULE can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def triton_cache() -> str:
    """Triton's kernel (and launcher) cache: triton.knobs (>= 3.4) or runtime.cache, else its rule."""
    if installed("triton"):
        import triton

        knobs = getattr(triton, "knobs", None)
        if knobs is not None:
            return knobs.cache.dir
        from triton.runtime.cache import default_cache_dir

        return default_cache_dir()
    home = os.environ.get("TRITON_HOME", os.path.expanduser("~"))
    return os.environ.get("TRITON_CACHE_DIR", os.path.join(home, ".triton", "cache"))


def vllm_cache() -> str:
    """vLLM's cache root as vllm.envs resolves it (VLLM_CACHE_ROOT, else $XDG_CACHE_HOME/vllm)."""
    import vllm.envs

    return vllm.envs.VLLM_CACHE_ROOT


def flashinfer_cache() -> str:
    """FlashInfer's JIT cache: $FLASHINFER_WORKSPACE_BASE (else HOME)/.cache/flashinfer (flashinfer/jit/env.py)."""
    base = os.environ.get("FLASHINFER_WORKSPACE_BASE", Path.home().as_posix())
    return str(Path(base) / ".cache" / "flashinfer")


def inductor_cache() -> str:
    """TorchInductor's cache dir (its default, /tmp/torchinductor_<user>, needs a passwd entry)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return cache_dir()


def cache_dirs() -> dict[str, Callable[[], str]]:
    """The directories to write, by name; a tool's own only where that tool is installed."""
    dirs = {
        "HOME": lambda: str(Path.home()),
        "XDG cache": lambda: os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
        "Triton cache": triton_cache,
    }
    if installed("torch"):
        dirs["TorchInductor cache"] = inductor_cache
    if installed("vllm"):
        dirs["vLLM cache"] = vllm_cache
    if installed("flashinfer"):
        dirs["FlashInfer cache"] = flashinfer_cache
    return dirs


def check_writable(name: str, resolve: Callable[[], str]) -> bool:
    """Resolve NAME's directory, create it as the tool would, write and remove a file there."""
    path = ""
    try:
        path = resolve()
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except Exception as exc:  # any failure is the finding, named on one line
        print(f"FAIL {name} {path}: {type(exc).__name__}: {exc}")
        return False
    print(f"ok   {name} {path} writable as uid {os.getuid()}")
    return True


def triton_build() -> tuple[Callable | None, str | None, list[str]]:
    """Triton's own _build, its NVIDIA driver.c and include dir; (None, None, []) without Triton."""
    if not installed("triton"):
        return None, None, []
    import triton
    from triton.runtime.build import _build

    nvidia = Path(triton.__file__).parent / "backends" / "nvidia"
    src = nvidia / "driver.c"
    return _build, str(src) if src.is_file() else None, [str(nvidia / "include")]


def manual_build(
    name: str, src: str, srcdir: str, library_dirs: list, include_dirs: list, libraries: list, ccflags: list
) -> str:
    """triton.runtime.build._build's command, for an image without Triton (the same flags, no setuptools)."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("Failed to find C compiler (gcc or clang; or CC)")
    scheme = sysconfig.get_default_scheme()
    py_include = sysconfig.get_paths(scheme="posix_prefix" if scheme == "posix_local" else scheme)["include"]
    so = os.path.join(srcdir, name + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = [cc, src, "-O3", "-shared", "-fPIC", "-Wno-psabi", "-o", so]
    cmd += [f"-l{lib}" for lib in libraries] + [f"-L{d}" for d in library_dirs]
    cmd += [f"-I{d}" for d in [*include_dirs, srcdir, py_include]] + ccflags
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return so


def call_build(build: Callable, name: str, src: str, srcdir: str, includes: list[str]) -> str:
    """BUILD on SRC with no libraries (no libcuda without a GPU driver: no -lcuda/-L) and, where its
    signature has them (Triton >= 3.6), no extra ccflags, as Triton's NVIDIA driver passes none."""
    extra = {"ccflags": []} if "ccflags" in inspect.signature(build).parameters else {}
    return build(name, src, srcdir, [], includes, [], **extra)


def check_compile() -> bool:
    """Build the Python.h probe (and Triton's driver.c where Triton is installed) into shared objects."""
    build, driver_c, includes = triton_build()
    how = "triton.runtime.build._build" if build else "Triton's _build flags"
    build = build or manual_build
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "probe.c").write_text(PROBE_C)
        sources = [("probe", str(Path(tmp) / "probe.c"))] + ([("cuda_utils", driver_c)] if driver_c else [])
        for name, src in sources:
            try:
                so = call_build(build, name, src, tmp, includes)
            except Exception as exc:  # compiler missing, Python.h missing, …
                detail = getattr(exc, "stderr", "") or ""
                print(f"FAIL compile {Path(src).name} with {how}: {exc} {detail.strip()[-300:]}".rstrip())
                ok = False
                continue
            print(f"ok   compile {Path(src).name} with {how} -> {Path(so).name} ({Path(so).stat().st_size} bytes)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also build a Python.h C file as Triton does")
    parser.add_argument("--as-any-uid", action="store_true", help="allow uid 0 or 1000 (tests)")
    args = parser.parse_args(argv)
    if os.getuid() in (0, 1000) and not args.as_any_uid:
        print(f"check_image_user: run as a uid other than 0 and 1000, not {os.getuid()}", file=sys.stderr)
        return 2
    print(f"uid {os.getuid()} gid {os.getgid()} HOME={os.environ.get('HOME')} python {sys.version.split()[0]}")
    results = [check_writable(name, resolve) for name, resolve in cache_dirs().items()]
    if args.compile:
        results.append(check_compile())
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
