#!/usr/bin/env python3
"""Rebuild codegeex_lsp/quant/corpus/: the int4 calibration corpus, shipped as package data.

A maintainer tool, run once on a Debian host with these sources installed (the corpus itself is
committed, so every machine calibrates on the same bytes):
  Python      the interpreter's stdlib (PSF-2.0), files from the first 48 of
              `stdlib_calibration_sources` order, which `bench quant` never holds out
  Go          golang-1.19-src (/usr/share/go-1.19/src, BSD-3-Clause)
  Rust        librust-{once-cell,smallvec,either,itoa,hashbrown}-dev (MIT OR Apache-2.0)
  JavaScript  npm's bundled dependencies (/usr/lib/node_modules/npm/node_modules, MIT or ISC)
  Java        cordova-android 12.0.1 from npm (`npm pack cordova-android@12`, Apache-2.0)
  C++         llama.cpp's src/*.cpp (MIT), from llama-cpp-python's source tarball
Never benchmark data: no file comes from HumanEval or any other benchmark.

usage: scripts/build_calibration_corpus.py CORDOVA_DIR LLAMA_CPP_DIR
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "codegeex_lsp" / "quant" / "corpus"
PER_LANGUAGE = 6
MIN_BYTES, MAX_BYTES = 2500, 9000


BORING = ("defs", "constants", "zerrors", "ztypes", "zsys")  # generated tables teach little


def pick(files: list[Path], n: int = PER_LANGUAGE, seed: int = 0, per_dir: int = 2) -> list[Path]:
    """n files of a useful size, in a fixed shuffled order of the sorted candidates, at most
    `per_dir` from one directory (variety over volume)."""
    ok = sorted(f for f in files if MIN_BYTES <= f.stat().st_size <= MAX_BYTES and not f.name.startswith(BORING))
    random.Random(seed).shuffle(ok)
    chosen: list[Path] = []
    for f in ok:
        if sum(c.parent == f.parent for c in chosen) >= per_dir:
            continue
        try:
            f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        chosen.append(f)
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise SystemExit(f"only {len(chosen)} usable files among {len(files)} candidates")
    return chosen


def main(cordova: Path, llama_cpp: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from codegeex_lsp.quant.calibration import stdlib_calibration_sources

    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "NOTICES").mkdir(parents=True)
    entries: list[dict[str, str]] = []

    def add(lang: str, files: list[Path], base: Path, origin: str, license_id: str, notice: str) -> None:
        (OUT / lang).mkdir(exist_ok=True)
        for f in files:
            rel = f.relative_to(base).as_posix()
            name = rel.replace("/", "__") + ".txt"  # not .py: linters and test collectors skip it
            shutil.copyfile(f, OUT / lang / name)
            entries.append(
                {"file": f"{lang}/{name}", "language": lang, "origin": f"{origin}: {rel}",
                 "license": license_id, "notice": f"NOTICES/{notice}"}
            )

    def notice(name: str, *sources: Path) -> str:
        text = "\n\n".join(s.read_text(encoding="utf-8") for s in sources)
        (OUT / "NOTICES" / name).write_text(text, encoding="utf-8")
        return name

    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    py = [p for p, _ in stdlib_calibration_sources(48)]
    add("python", pick(py), stdlib, f"CPython {sys.version.split()[0]} standard library", "PSF-2.0",
        notice("cpython-LICENSE.txt", stdlib / "LICENSE.txt"))

    go_src = Path("/usr/share/go-1.19/src")
    skip = {"testdata", "cmd", "vendor", "internal", "runtime", "syscall"}
    go_files = [p for p in go_src.rglob("*.go")
                if not p.name.endswith("_test.go") and not skip.intersection(p.relative_to(go_src).parts)]
    add("go", pick(go_files), go_src, "Go 1.19 standard library (Debian golang-1.19-src)", "BSD-3-Clause",
        notice("go-copyright.txt", Path("/usr/share/doc/golang-1.19-src/copyright")))

    registry = Path("/usr/share/cargo/registry")
    crates = ["once_cell-1.17.0", "smallvec-1.9.0", "either-1.6.1", "itoa-1.0.1", "hashbrown-0.12.3"]
    rust_files = [p for c in crates for p in (registry / c / "src").rglob("*.rs")]
    chosen = pick(rust_files, per_dir=2)
    for crate in crates:
        mine = [p for p in chosen if p.is_relative_to(registry / crate)]
        if mine:
            add("rust", mine, registry, f"Rust crate {crate} (Debian librust-*-dev)", "MIT OR Apache-2.0",
                notice(f"{crate}-LICENSE-MIT.txt", registry / crate / "LICENSE-MIT"))

    npm_mods = Path("/usr/lib/node_modules/npm/node_modules")
    js_files = []
    licenses: dict[Path, str] = {}
    for pkg in sorted(npm_mods.iterdir()):
        meta = pkg / "package.json"
        if not meta.is_file() or not sorted(pkg.glob("LICENSE*")):
            continue
        lic = json.loads(meta.read_text()).get("license")
        if lic not in ("MIT", "ISC", "BSD-2-Clause"):
            continue
        licenses[pkg] = lic
        js_files += [p for p in pkg.rglob("*.js") if "test" not in p.relative_to(pkg).parts]
    for f in pick(js_files):
        pkg = npm_mods / f.relative_to(npm_mods).parts[0]
        version = json.loads((pkg / "package.json").read_text())["version"]
        add("javascript", [f], npm_mods, f"npm package {pkg.name}@{version} (bundled with npm)", licenses[pkg],
            notice(f"npm-{pkg.name}-LICENSE.txt", sorted(pkg.glob("LICENSE*"))[0]))

    java_files = list((cordova / "framework" / "src").rglob("*.java"))
    add("java", pick(java_files, per_dir=6), cordova, "npm package cordova-android@12.0.1", "Apache-2.0",
        notice("cordova-android-LICENSE-NOTICE.txt", cordova / "LICENSE", cordova / "NOTICE"))

    cpp_files = list((llama_cpp / "src").rglob("*.cpp"))
    add("cpp", pick(cpp_files, per_dir=4), llama_cpp, "llama.cpp (vendored in llama-cpp-python 0.3.36)", "MIT",
        notice("llama.cpp-LICENSE.txt", llama_cpp / "LICENSE"))

    manifest = {
        "about": "int4 calibration corpus (never benchmark data); rebuilt by scripts/build_calibration_corpus.py",
        "files": entries,
    }
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{len(entries)} files, {size / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
