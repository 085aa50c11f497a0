"""The VS Code extension: its node unit tests, and ghost text in a real VS Code.

The end-to-end tests package the extension (`vsce package`, offline), install the .vsix into
code-server (Code-OSS), open it in Debian's Chromium through playwright-core, type at the end of a
workspace file, wait for ghost text, save a screenshot, press Tab, save the file, and check the
file on disk and the extension's log.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.editors import (
    MID_BODY_FILE,
    REPO,
    real_server_args,
    require,
    stop_group,
    tiny_server_args,
    venv_bin,
    which,
)

EXTENSION = REPO / "editor_clients" / "vscode"
E2E_VSCODE = REPO / ".e2e" / "vscode"
CODE_SERVER = E2E_VSCODE / "node_modules" / ".bin" / "code-server"
PLAYWRIGHT = E2E_VSCODE / "node_modules" / "playwright-core"
DRIVER = Path(__file__).with_name("vscode_driver.cjs")
CHROMIUM = "/usr/bin/chromium"

# Word-based suggestions would hide the ghost text and take Tab; the rest keeps the window quiet.
EDITOR_SETTINGS = {
    "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
    "editor.suggestOnTriggerCharacters": False,
    "editor.wordBasedSuggestions": "off",
    "editor.inlineSuggest.enabled": True,
    "editor.autoClosingBrackets": "never",
    "editor.autoClosingQuotes": "never",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    "security.workspace.trust.enabled": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "chat.commandCenter.enabled": False,
    "files.autoSave": "off",
}


def _node_bin(name: str) -> Path:
    return EXTENSION / "node_modules" / ".bin" / name


def _run(cmd: list[str], cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def compiled() -> Path:
    require(_node_bin("tsc"), "the extension's npm packages")
    _run([str(_node_bin("tsc")), "-p", "."], EXTENSION)
    return EXTENSION / "out"


def test_extension_unit_tests(compiled):
    """`node --test` over the pure modules (settings, server command, status view, tracker)."""
    done = _run(["node", "--test", str(compiled / "test")], EXTENSION)
    assert "# fail 0" in done.stdout, done.stdout
    assert "# pass 0" not in done.stdout


@pytest.fixture(scope="module")
def vsix(compiled, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vsix") / "codegeex-lsp.vsix"
    _run(
        [str(_node_bin("vsce")), "package", "--skip-license", "--allow-missing-repository", "-o", str(out)],
        EXTENSION,
    )
    assert out.stat().st_size > 10_000
    return out


def test_vsix_contents(vsix):
    """The package carries the compiled extension and its runtime dependency, not sources or tests."""
    import zipfile

    names = zipfile.ZipFile(vsix).namelist()
    assert "extension/package.json" in names
    assert "extension/out/src/extension.js" in names
    assert any(n.startswith("extension/node_modules/vscode-languageclient/") for n in names)
    assert not any(n.startswith(("extension/src/", "extension/test/", "extension/out/test/")) for n in names)
    assert not any(n.startswith("extension/node_modules/typescript/") for n in names)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Session:
    result: dict
    file: Path
    log_text: str


def _run_vscode(
    tmp: Path,
    vsix: Path,
    server_args: list[str],
    text: str,
    typed: str,
    screenshot: Path,
    timeout_s: float,
    line: int | None = None,
) -> Session:
    """One code-server + Chromium session: type `typed` at the end of a file holding `text`
    (or at the end of its 1-based `line`)."""
    require(CODE_SERVER, "code-server")
    require(PLAYWRIGHT, "playwright-core")
    require(which("chromium") and CHROMIUM, "chromium")
    data, extensions, workspace, profile = (tmp / n for n in ("data", "ext", "ws", "profile"))
    for d in (data / "User", extensions, workspace, profile):
        d.mkdir(parents=True)
    source = workspace / "demo.py"
    source.write_text(text)
    (data / "User" / "settings.json").write_text(json.dumps({**EDITOR_SETTINGS, "codegeexLsp.maxTokens": 16}))
    # The server's path and arguments are machine settings: code-server reads them from its
    # Machine settings, never from the (browser-side) user or workspace settings.
    (data / "Machine").mkdir()
    server = {
        "codegeexLsp.server.path": str(venv_bin("codegeex-lsp")),
        "codegeexLsp.server.args": server_args,
    }
    (data / "Machine" / "settings.json").write_text(json.dumps(server, indent=2))
    common = [
        "--config",
        str(tmp / "config.yaml"),
        "--user-data-dir",
        str(data),
        "--extensions-dir",
        str(extensions),
    ]
    _run([str(CODE_SERVER), *common, "--install-extension", str(vsix)], tmp, timeout_s=180)

    port = _free_port()
    server_log = (tmp / "code-server.log").open("w")
    code_server = subprocess.Popen(
        [
            str(CODE_SERVER),
            *common,
            "--auth",
            "none",
            "--bind-addr",
            f"127.0.0.1:{port}",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--disable-getting-started-override",
            str(workspace),
        ],
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its extension host and our language server die with the group
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert code_server.poll() is None, (tmp / "code-server.log").read_text()
                assert time.monotonic() < deadline, "code-server did not listen within 60 s"
                time.sleep(0.2)
        args = {
            "playwright": str(PLAYWRIGHT),
            "url": f"http://127.0.0.1:{port}/?folder={workspace}",
            "file": source.name,
            "type": typed,
            "screenshot": str(screenshot),
            "profile": str(profile),
            "timeoutMs": int(timeout_s * 1000),
        }
        if line is not None:
            args["line"] = line
        driven = subprocess.run(
            ["node", str(DRIVER), json.dumps(args)], capture_output=True, text=True, timeout=timeout_s + 120
        )
        result = json.loads(driven.stdout.strip().splitlines()[-1]) if driven.stdout.strip() else {}
        assert result.get("ok"), f"driver failed: {result.get('error')}\n{driven.stderr}"
    finally:
        stop_group(code_server)
        server_log.close()
    logs = sorted(data.glob("logs/*/exthost*/codegeex-lsp.codegeex-lsp/CodeGeeX.log"))
    return Session(result, source, "\n".join(p.read_text() for p in logs))


def _ghost(result: dict) -> tuple[str, list[str]]:
    ghost = result["ghost"]
    return "".join(ghost["inline"]), ghost["block"]


def _check_accepted(session: Session, text: str, typed: str) -> str:
    first, more = _ghost(session.result)
    assert first.strip() or any(line.strip() for line in more), session.result
    on_disk = session.file.read_text()
    # The typed text and the accepted suggestion, in order, where the cursor was.
    assert on_disk.startswith(text + typed + first), (on_disk, session.result)
    for line in more:
        assert line.rstrip() in on_disk
    assert "codegeex/accepted file://" in session.log_text, session.log_text
    if session.result.get("dismissShown"):
        assert "codegeex/dismissed file://" in session.log_text, session.log_text
    assert session.result.get("toggled")
    return on_disk


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_vscode_ghost_text_tab_and_save(vsix, readable_model, artifacts, tmp_path):
    text, typed = "def add(a, b):\n", "    r"
    shot = artifacts / "vscode-ghost-text.png"
    shot.unlink(missing_ok=True)
    session = _run_vscode(tmp_path, vsix, tiny_server_args(readable_model), text, typed, shot, timeout_s=180)
    (artifacts / "vscode-e2e-result.json").write_text(json.dumps(session.result, indent=2) + "\n")
    assert session.result["status"] == "CodeGeeX ready"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    _check_accepted(session, text, typed)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_vscode_real_model(vsix, artifacts, tmp_path):
    text = "import math\n\n\ndef circle_area(radius: float) -> float:\n"
    typed = "    return "
    shot = artifacts / "vscode-ghost-text-real-model.png"
    shot.unlink(missing_ok=True)
    session = _run_vscode(tmp_path, vsix, real_server_args(), text, typed, shot, timeout_s=300)
    on_disk = _check_accepted(session, text, typed)
    assert "radius" in on_disk.split(typed, 1)[1], on_disk
    shutil.copy(session.file, artifacts / "vscode-real-model-demo.py")


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_vscode_real_model_mid_body(vsix, artifacts, tmp_path):
    """Issue 17 item 7: Enter at the end of `def add(a, b):` mid-file (VS Code indents the new line),
    then `r`: the ghost text is `return …`, and Tab puts it into add()'s body."""
    lines = MID_BODY_FILE.splitlines()
    header = lines.index("def add(a, b):") + 1
    shot = artifacts / "vscode-ghost-text-mid-body.png"
    shot.unlink(missing_ok=True)
    session = _run_vscode(
        tmp_path, vsix, real_server_args(), MID_BODY_FILE, "\nr", shot, timeout_s=300, line=header
    )
    (artifacts / "vscode-e2e-result-mid-body.json").write_text(json.dumps(session.result, indent=2) + "\n")
    first, _more = _ghost(session.result)
    assert ("r" + first).startswith("return"), session.result
    on_disk = session.file.read_text().splitlines()
    # Accepted into the body, right after the header, indented as VS Code indented the new line.
    assert on_disk[:header] == lines[:header]
    assert on_disk[header] == "    r" + first, (on_disk, session.result)
    assert "codegeex/accepted file://" in session.log_text, session.log_text
