"""The replayed files: a fixed sample of toolchain standard-library sources this project did not write.

Usefulness is only meaningful on code the model and the benchmark's authors did not shape, and a
benchmark is only comparable across machines if it replays the same files. So a fixed-seed sample of
the sources installed with this host's toolchains (CPython's standard library, Go's `src/` and its
cgo C files, npm's own `lib/` JavaScript) was copied once into `bench/data/latency/` beside each
origin's license notice (`LICENSE-*.txt`, listed in its README); `write_corpus` is how, and
`packaged_files` is what the benchmark replays.
"""

from __future__ import annotations

import random
import shutil
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codegeex_lsp.context.languages import language_for

CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "latency"
MIN_BYTES, MAX_BYTES = 1_500, 14_000  # big enough to type into, small enough for one prompt window
# Generated tables (Go's z*.go, Python's encodings/) are left out: nobody types them.


@dataclass(frozen=True)
class Origin:
    """Where one language's files come from on a host, and the notice that must travel with them."""

    name: str  # file-name prefix in the corpus, e.g. "cpython"
    root: Callable[[], Path]
    suffix: str
    license_file: Callable[[], Path]
    keep: Callable[[Path], bool]


def _python_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _plain(path: Path) -> bool:
    parts = set(path.parts)
    return not parts & {
        "test",
        "tests",
        "testdata",
        "vendor",
        "idlelib",
        "lib2to3",
        "turtledemo",
        "dist",
        "site-packages",
        "ensurepip",
        "pydoc_data",
        "encodings",
    }


ORIGINS: tuple[Origin, ...] = (
    Origin("cpython", _python_root, ".py", lambda: _python_root() / "LICENSE.txt", _plain),
    Origin(
        "go",
        lambda: Path("/usr/lib/go-1.19/src"),
        ".go",
        lambda: Path("/usr/share/doc/golang-1.19-src/copyright"),
        lambda p: (
            _plain(p)
            and not p.name.endswith("_test.go")
            and "cmd" not in p.parts
            and not p.name.startswith("z")
        ),
    ),
    Origin(
        "go-cgo",
        lambda: Path("/usr/lib/go-1.19/src/runtime/cgo"),
        ".c",
        lambda: Path("/usr/share/doc/golang-1.19-src/copyright"),
        _plain,
    ),
    Origin(
        "npm",
        lambda: Path("/usr/lib/node_modules/npm/lib"),
        ".js",
        lambda: Path("/usr/lib/node_modules/npm/LICENSE"),
        _plain,
    ),
)


def sample(origin: Origin, n: int, rng: random.Random) -> list[Path]:
    """`n` files of `origin` with MIN_BYTES..MAX_BYTES, sorted first so the seed fixes the choice."""
    root = origin.root()
    found = sorted(
        p
        for p in root.rglob(f"*{origin.suffix}")
        if p.is_file() and MIN_BYTES <= p.stat().st_size <= MAX_BYTES and origin.keep(p.relative_to(root))
    )
    return rng.sample(found, min(n, len(found)))


def write_corpus(dest: Path = CORPUS_DIR, per_origin: int = 4, seed: int = 0) -> list[Path]:
    """Copy a fixed-seed sample of each origin present on this host into `dest` with its notice."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    readme = [
        "# Files replayed by `codegeex-lsp bench latency`",
        "",
        "Copied unchanged by `codegeex_lsp.bench.latency.corpus.write_corpus(seed=0)` from the toolchains",
        "installed on the machine that made them; each origin's license notice sits beside them.",
        "",
        "| file | origin | license notice |",
        "|---|---|---|",
    ]
    for origin in ORIGINS:
        if not origin.root().is_dir() or not origin.license_file().is_file():
            continue
        notice = f"LICENSE-{origin.name.split('-')[0]}.txt"
        shutil.copyfile(origin.license_file(), dest / notice)
        for path in sample(origin, per_origin, rng):
            rel = path.relative_to(origin.root())
            name = f"{origin.name}__{'__'.join(rel.parts)}"
            shutil.copyfile(path, dest / name)
            written.append(dest / name)
            readme.append(f"| `{name}` | `{path}` | `{notice}` |")
    (dest / "README.md").write_text("\n".join(readme) + "\n", encoding="utf-8")
    return written


def packaged_files(corpus: Path = CORPUS_DIR) -> list[Path]:
    """The corpus the benchmark replays by default, in a fixed order: the files of a language with a
    tree-sitter grammar (the notices and README beside them are not replayed)."""
    return sorted(p for p in corpus.iterdir() if language_for(None, str(p)).has_grammar)


def language_id(path: Path) -> str:
    """The languageId an editor would send for the file (by its extension, from the registry)."""
    return language_for(None, str(path)).language_id


if __name__ == "__main__":  # regenerate the corpus (only on purpose: it changes the benchmark)
    for written in write_corpus():
        print(written)
