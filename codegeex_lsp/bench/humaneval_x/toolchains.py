"""Find and prepare each language's compiler or interpreter, once per run, before any task runs.

A missing toolchain makes only its language unavailable (with the reason and the install hint);
a missing optional piece (js-md5, boost, openssl) is a note, because it breaks one task, not all.
What a language needs at run time that is not on the sandbox's PATH travels in `Toolchain.env`
(NODE_PATH, GOPATH, GOCACHE) and `Toolchain.compile_args` (Rust's `--extern` flags); the host dirs
these name, outside /usr and /etc, are in `Toolchain.mounts`, which the sandbox binds read-only.

Go's build cache is such a read-only mount: generated code must not write into a cache later runs
read, so it is filled once here, by compiling a trusted test that imports the packages the tasks
use, and each sandboxed `go test -c` then reads it (Go only warns when it cannot add to a cache).

Rust's crates (rand 0.8, regex 1, md5 0.7) are built once by cargo from Debian's offline registry
into a persistent cache, and each task is then compiled with `rustc --test --extern ...` against
those rlibs. One cargo project per task would either rebuild the crates every time or, with a shared
target dir, serialise all workers on cargo's build-directory lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from codegeex_lsp.bench.humaneval_x.sandbox import DEFAULT_PATH
from codegeex_lsp.config import cache_dir

INSTALL_HINT = "run scripts/install-toolchains"
DEBIAN_CARGO_REGISTRY = Path("/usr/share/cargo/registry")
DEBIAN_GOPATH = Path("/usr/share/gocode")
RUST_CRATES: tuple[str, ...] = ("rand", "regex", "md5")

# regex's default "perf-literal" feature needs aho-corasick and memchr, which Debian ships in other
# packages than librust-regex-dev; it is only a speed-up, so the crate is built without it.
_RUST_DEPS_MANIFEST = """\
[package]
name = "hx_deps"
version = "0.1.0"
edition = "2021"

[dependencies]
rand = "0.8"
regex = { version = "1", default-features = false, features = ["std", "unicode", "perf-cache", \
"perf-dfa", "perf-inline"] }
md5 = "0.7"
"""

_CARGO_CONFIG = f"""\
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "{DEBIAN_CARGO_REGISTRY}"

[net]
offline = true
"""


@dataclass(frozen=True)
class Toolchain:
    """Whether a language can run here, and what its programs need to run."""

    language: str
    available: bool
    reason: str = ""
    versions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    compile_args: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()


def bench_cache_dir() -> Path:
    """Persistent per-user state shared by runs (Go build cache, prebuilt Rust crates)."""
    path = cache_dir() / "humanevalx"
    path.mkdir(parents=True, exist_ok=True)
    return path


def npm_prefix() -> Path:
    """Where scripts/install-toolchains puts js-md5 (keep the two in step)."""
    env = os.environ.get("CODEGEEX_NPM_PREFIX")
    return Path(env) if env else Path(sys.prefix) / "npm"


@functools.cache
def find_toolchain(language: str) -> Toolchain:
    """Detect (and for Rust, build the crates of) one language's toolchain; cached per process."""
    finder = _FINDERS.get(language)
    if finder is None:
        raise ValueError(f"unknown HumanEval-X language {language!r}")
    return finder()


REQUIRED_TOOLS: dict[str, tuple[str, ...]] = {
    "python": (),
    "js": ("node",),
    "cpp": ("g++",),
    "java": ("javac", "java"),
    "go": ("go",),
    "rust": ("rustc", "cargo"),
}


def installed(language: str) -> bool:
    """Cheap check (no builds, no subprocess): are the language's programs on the sandbox's PATH?"""
    return _which(*REQUIRED_TOOLS[language]) is None


def _which(*tools: str) -> str | None:
    """The first tool missing from the sandbox's PATH, or None."""
    return next((tool for tool in tools if shutil.which(tool, path=DEFAULT_PATH) is None), None)


def _version(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": DEFAULT_PATH})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{argv[0]}: {exc}"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else argv[0]


def _missing(language: str, what: str) -> Toolchain:
    return Toolchain(language, available=False, reason=f"{what} not found ({INSTALL_HINT})")


def _find_python() -> Toolchain:
    # The preamble every Python program starts with imports numpy: without it every task fails.
    probe = "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
    version = _version(sys.executable, "-c", probe)
    if not version.startswith("python "):
        return _missing("python", f"numpy for {sys.executable}")
    # The venv's interpreter and its base installation, wherever they live (a pyenv under $HOME).
    mounts = (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)))
    return Toolchain("python", available=True, versions=(version,), mounts=mounts)


def _find_js() -> Toolchain:
    if missing := _which(*REQUIRED_TOOLS["js"]):
        return _missing("js", missing)
    modules = npm_prefix() / "node_modules"
    notes = () if (modules / "js-md5").is_dir() else (f"js-md5 missing in {modules}: JavaScript/162 fails",)
    return Toolchain(
        "js",
        available=True,
        versions=(_version("node", "--version"),),
        notes=notes,
        env={"NODE_PATH": str(modules)},
        mounts=(str(modules),),
    )


def _find_cpp() -> Toolchain:
    if missing := _which(*REQUIRED_TOOLS["cpp"]):
        return _missing("cpp", missing)
    notes = tuple(
        f"{header} missing: {tasks} fail"
        for header, tasks in (
            ("/usr/include/boost/any.hpp", "CPP/22, CPP/137"),
            ("/usr/include/openssl/md5.h", "CPP/162"),
        )
        if not Path(header).exists()
    )
    return Toolchain("cpp", available=True, versions=(_version("g++", "--version"),), notes=notes)


def _find_java() -> Toolchain:
    if missing := _which(*REQUIRED_TOOLS["java"]):
        return _missing("java", missing)
    return Toolchain("java", available=True, versions=(_version("javac", "-version"),))


def _find_go() -> Toolchain:
    if missing := _which(*REQUIRED_TOOLS["go"]):
        return _missing("go", missing)
    if not (DEBIAN_GOPATH / "src/github.com/stretchr/testify/assert").is_dir():
        return _missing("go", f"testify in {DEBIAN_GOPATH}")
    gocache = bench_cache_dir() / "go-build"
    gocache.mkdir(exist_ok=True)
    env = {
        "GO111MODULE": "off",
        "GOPATH": str(DEBIAN_GOPATH),
        "GOCACHE": str(gocache),
        "GOTOOLCHAIN": "local",
    }
    notes = () if _warm_go_cache(env) else ("could not prefill the Go build cache: each task compiles more",)
    return Toolchain(
        "go",
        available=True,
        versions=(_version("go", "version"),),
        notes=notes,
        env=env,
        mounts=(str(DEBIAN_GOPATH), str(gocache)),
    )


_GO_WARM_PACKAGES = (
    "bytes",
    "crypto/md5",
    "fmt",
    "math",
    "math/rand",
    "regexp",
    "sort",
    "strconv",
    "strings",
    "time",
)


def _warm_go_cache(env: dict[str, str]) -> bool:
    """Compile (never run) a trusted test importing what the tasks use, filling GOCACHE."""
    imports = "".join(f'    _ "{package}"\n' for package in _GO_WARM_PACKAGES)
    source = (
        'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n'
        f"{imports})\n\nfunc TestWarm(t *testing.T) {{ assert.New(t).True(true) }}\n"
    )
    with tempfile.TemporaryDirectory(prefix="hx-gowarm-") as scratch:
        Path(scratch, "main_test.go").write_text(source)
        try:
            done = subprocess.run(
                ["go", "test", "-c", "-o", "main.test", "main_test.go"],
                cwd=scratch,
                env={"PATH": DEFAULT_PATH, "HOME": scratch, **env},
                capture_output=True,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def _find_rust() -> Toolchain:
    if missing := _which(*REQUIRED_TOOLS["rust"]):
        return _missing("rust", missing)
    if not all(any(DEBIAN_CARGO_REGISTRY.glob(f"{crate}-[0-9]*")) for crate in RUST_CRATES):
        return _missing("rust", f"rand/regex/md5 in {DEBIAN_CARGO_REGISTRY}")
    rustc = _version("rustc", "--version")
    try:
        externs = _build_rust_crates(rustc)
    except RuntimeError as exc:
        return Toolchain("rust", available=False, reason=str(exc))
    deps_dir = Path(externs["rand"]).parent
    args = ["-L", f"dependency={deps_dir}"]
    for crate in RUST_CRATES:
        args += ["--extern", f"{crate}={externs[crate]}"]
    return Toolchain(
        "rust",
        available=True,
        versions=(rustc, _version("cargo", "--version")),
        compile_args=tuple(args),
        mounts=(str(deps_dir),),
    )


def _build_rust_crates(rustc_version: str) -> dict[str, str]:
    """Build the crates once per rustc version; return crate name -> rlib path.

    Guarded by a file lock so that parallel runs (or test sessions) do not build it twice at once.
    """
    key = hashlib.sha256((rustc_version + _RUST_DEPS_MANIFEST).encode()).hexdigest()[:12]
    project = bench_cache_dir() / f"rust-deps-{key}"
    externs_file = project / "externs.json"
    project.mkdir(exist_ok=True)
    with _locked(project / ".lock"):
        if externs_file.exists():
            externs = json.loads(externs_file.read_text())
            if all(Path(path).exists() for path in externs.values()):
                return externs
        (project / "src").mkdir(exist_ok=True)
        (project / "src/lib.rs").write_text("")
        (project / "Cargo.toml").write_text(_RUST_DEPS_MANIFEST)
        (project / ".cargo").mkdir(exist_ok=True)
        (project / ".cargo/config.toml").write_text(_CARGO_CONFIG)
        env = {
            "PATH": DEFAULT_PATH,  # Debian's cargo/rustc, never a rustup toolchain from the user's PATH
            "HOME": str(project),
            "CARGO_HOME": str(project / "cargo-home"),
            "CARGO_PROFILE_DEV_DEBUG": "0",  # smaller rlibs: each task links faster
            "LANG": "C.UTF-8",
        }
        try:
            done = subprocess.run(
                ["cargo", "build", "--offline", "--message-format=json"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError("building the Rust crates timed out") from exc
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"building rand/regex/md5 from {DEBIAN_CARGO_REGISTRY} failed:\n{tail}")
        externs = _rlibs_from_cargo_messages(done.stdout)
        externs_file.write_text(json.dumps(externs, indent=1))
        return externs


def _rlibs_from_cargo_messages(stdout: str) -> dict[str, str]:
    externs: dict[str, str] = {}
    for line in stdout.splitlines():
        message = json.loads(line) if line.startswith("{") else {}
        name = message.get("target", {}).get("name")
        if message.get("reason") == "compiler-artifact" and name in RUST_CRATES:
            externs[name] = next(path for path in message["filenames"] if path.endswith(".rlib"))
    if missing := set(RUST_CRATES) - externs.keys():
        raise RuntimeError(f"cargo built no rlib for {', '.join(sorted(missing))}")
    return externs


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_FINDERS = {
    "python": _find_python,
    "js": _find_js,
    "cpp": _find_cpp,
    "java": _find_java,
    "go": _find_go,
    "rust": _find_rust,
}
