"""Build glue that pyproject.toml cannot express.

- `grammars/` and `kernels/triton/` live at the top level of the repository but ship inside the
  package as `codegeex_lsp.grammars` and `codegeex_lsp.triton_kernels` (never a top-level `kernels`:
  transformers imports a hub package of that name when one is importable).
- `kernels/cpu/*.cpp` build into the torch extension `codegeex_lsp._kernels`. A machine without a
  working compiler still installs; the engine then warns and uses the PyTorch reference.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import find_packages, setup

PACKAGE_DIR = {
    "codegeex_lsp.grammars": "grammars",
    "codegeex_lsp.triton_kernels": "kernels/triton",
}


def _ext_modules() -> tuple[list, dict]:
    sources = sorted(glob.glob("kernels/cpu/*.cpp"))
    if not sources or os.environ.get("CODEGEEX_LSP_NO_KERNELS") == "1":
        return [], {}
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    class OptionalBuildExtension(BuildExtension):
        """A failed kernel build must not fail the install: the reference path still works."""

        def run(self) -> None:
            try:
                super().run()
            except Exception as exc:
                print(
                    f"warning: codegeex_lsp._kernels not built ({exc}); using the PyTorch reference",
                    file=sys.stderr,
                )

    ext = CppExtension(
        "codegeex_lsp._kernels",
        sources,
        include_dirs=[os.path.abspath("kernels")],
        extra_compile_args=["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp", "-std=c++17"],
        extra_link_args=["-fopenmp"],
    )
    return [ext], {"build_ext": OptionalBuildExtension.with_options(use_ninja=False)}


ext_modules, cmdclass = _ext_modules()
setup(
    package_dir=PACKAGE_DIR,
    packages=[*find_packages(include=["codegeex_lsp", "codegeex_lsp.*"]), *PACKAGE_DIR],
    package_data={
        "codegeex_lsp": ["demo/*", "py.typed", "bench/data/*", "bench/data/*/*"],
        "codegeex_lsp.grammars": ["*.toml", "*.json", "*/*.scm"],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
