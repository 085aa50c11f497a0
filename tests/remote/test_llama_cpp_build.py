"""The llama.cpp build that scripts/install-llama-cpp makes runs on this host: the peer and anchor.

The hosts of this machine kind report AMX but trap it (SIGILL), so a build must hold no AMX
instruction, and its programs and libraries must actually run here: the server answers /infill on the
embedded GGUF, and llama-cpp-python loads the same libraries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from codegeex_lsp.bench import llama_cpp
from tests.remote.conftest import free_port, gguf_path

AMX_MNEMONICS = ("ldtilecfg", "tilerelease", "tilezero", "tileloadd", "tdpbssd", "tdpbusd", "tdpbf16ps")


@pytest.fixture(scope="module")
def bin_dir():
    return llama_cpp.bin_dir()  # raises (fails) where the install step did not run


def test_build_is_for_this_hosts_cpu(bin_dir):
    assert (bin_dir.parent / "cpu-flags").read_text().strip() == llama_cpp.host_cpu_flags()


@pytest.mark.parametrize("program", ["llama-server", "llama-bench", "llama-quantize"])
def test_programs_start(bin_dir, program):
    proc = subprocess.run(
        [str(bin_dir / program), "--help"], capture_output=True, text=True, env=llama_cpp.run_env(), timeout=60
    )
    assert proc.returncode in (0, 1), proc.stderr[-500:]  # llama-quantize exits 1 after its usage
    assert proc.returncode >= 0, f"{program} died of signal {-proc.returncode}"


def test_no_amx_instructions_in_the_libraries(bin_dir):
    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils) is needed to check the build"
    libs = sorted(bin_dir.glob("libggml*.so*"))
    assert libs, f"no ggml libraries in {bin_dir}"
    for lib in libs:
        text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True).stdout
        found = [m for m in AMX_MNEMONICS if f"\t{m}" in text or f" {m} " in text]
        assert not found, f"{lib.name} holds AMX instructions {found}: they trap on this machine kind"


def test_llama_cpp_python_loads_the_same_build(bin_dir):
    code = (
        "import llama_cpp, pathlib, sys;"
        "llama_cpp.llama_backend_init();"
        "lib = pathlib.Path(llama_cpp.__file__).parent / 'lib';"
        "print((lib / '.codegeex-build').read_text().strip())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert bin_dir.parent.name.endswith(proc.stdout.strip())


def test_server_answers_infill_on_the_embedded_gguf(bin_dir):
    model = gguf_path()
    assert model.is_file(), f"{model} is missing: run `codegeex-lsp model install`"
    port = free_port()
    proc = subprocess.Popen(
        [str(bin_dir / "llama-server"), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
         "-t", "2", "-c", "1024", "--no-webui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=llama_cpp.run_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"llama-server exited {proc.returncode}: {proc.stderr.read()[-800:]!r}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "llama-server did not become healthy"
            time.sleep(0.3)
        body = json.dumps({
            "input_prefix": "def add(a, b):\n    return ",
            "input_suffix": "\n\nprint(add(1, 2))\n",
            "n_predict": 8, "temperature": 0, "top_k": 1,
        }).encode()  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/infill", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            answer = json.loads(r.read())
        assert "a + b" in answer["content"], answer
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
