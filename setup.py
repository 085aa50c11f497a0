"""Build glue that pyproject.toml cannot express.

- `grammars/` and `kernels/triton/` live at the top level of the repository but ship inside the
  package as `codegeex_lsp.grammars` and `codegeex_lsp.triton_kernels` (never a top-level `kernels`:
  transformers imports a hub package of that name when one is importable).
- `kernels/cpu/*.cpp` build into the torch extension `codegeex_lsp._kernels`, with no -m flag: the
  SIMD paths select their ISA per function (`#pragma GCC target`) and are picked at run time, so one
  build runs on any x86-64 CPU. A failed kernel build fails the install; CODEGEEX_LSP_NO_KERNELS=1
  skips the kernels on purpose (the engine then warns and runs the slow PyTorch reference).
"""

from __future__ import annotations

import glob
import os

from setuptools import find_namespace_packages, setup

PACKAGE_DIR = {
    "codegeex_lsp.grammars": "grammars",
    "codegeex_lsp.triton_kernels": "kernels/triton",
}


def _ext_modules() -> tuple[list, dict]:
    sources = sorted(glob.glob("kernels/cpu/*.cpp"))
    if not sources or os.environ.get("CODEGEEX_LSP_NO_KERNELS") == "1":
        return [], {}
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    ext = CppExtension(
        "codegeex_lsp._kernels",
        sources,
        include_dirs=[os.path.abspath("kernels")],
        depends=sorted(glob.glob("kernels/*.h") + glob.glob("kernels/cpu/*.h")),
        extra_compile_args=["-O3", "-fopenmp", "-std=c++17"],
        extra_link_args=["-fopenmp"],
    )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=False)}


ext_modules, cmdclass = _ext_modules()
setup(
    package_dir=PACKAGE_DIR,
    # namespace packages too: the data folders (demo files, benchmark data, calibration corpus) are
    # listed as packages, as setuptools wants of every folder it installs files from
    packages=[
        *find_namespace_packages(include=["codegeex_lsp", "codegeex_lsp.*"], exclude=["*__pycache__"]),
        *PACKAGE_DIR,
        *(f"codegeex_lsp.grammars.{name}" for name in find_namespace_packages("grammars", exclude=["*__pycache__"])),
    ],
    package_data={
        "codegeex_lsp": ["demo/*", "py.typed", "bench/data/*", "bench/data/*/*", "quant/corpus/*", "quant/corpus/*/*"],
        "codegeex_lsp.grammars": ["*.toml", "*.json", "*/*.scm"],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
