"""The typing model: which keys a person presses to retype part of a real file, and when.

A session cuts a run of whole lines out of a file, opens the file without them and types them back
at the cut, one character per key, except that a line break and the next line's indentation are one
key (the editor's auto-indent). So the cursor meets LINE and BLOCK positions (mid-line, start of a
new line, start of a body) in the proportion real code has them.

Gaps between keys are log-normal around 1/cps; a typist pauses deliberately at the start of a new
line and sometimes after punctuation (to read the suggestion), and at the end of the session. Those
pauses are where "time to first suggestion after a pause" is measured; `Keystroke.pause_after`
marks them. Everything is drawn from one seeded `random.Random`, so a seed fixes the replay.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codegeex_lsp.bench.latency.corpus import language_id

CPS = 5.0  # characters per second: a steady programmer
GAP_SIGMA = 0.35
MIN_GAP_S, MAX_GAP_S = 0.04, 0.6
LINE_PAUSE_S = 1.2  # after a line break: reading the suggestion for the new line
PUNCT_PAUSE_S, PUNCT_PAUSE_P = 0.8, 0.25
PAUSE_AFTER = "(.=:,{"
MAX_KEYS_PER_SESSION = 60


@dataclass(frozen=True)
class Keystroke:
    text: str  # inserted at the cursor
    at_s: float  # since the session's start
    pause_after: bool = False  # a deliberate pause follows (or the session ends)


@dataclass(frozen=True)
class Session:
    """Type `keys` into `text` (a source file with some lines cut out) at `line`, column 0."""

    index: int
    path: str
    uri: str
    language_id: str
    text: str
    line: int
    keys: tuple[Keystroke, ...]
    region: str = ""  # the cut lines (without the last line break); `keys` type all or the start of it

    def rest_after(self, key_index: int) -> str:
        """The cut text still to come after key `key_index`, with its line break: what a suggestion
        there should say. A suggestion running past the cut lines is judged on its first line only."""
        typed = sum(len(k.text) for k in self.keys[: key_index + 1])
        return self.region[typed:] + "\n"


def split_keystrokes(typed: str) -> list[str]:
    """One key per character, except a line break plus the next line's indentation (auto-indent)."""
    keys: list[str] = []
    for index, line in enumerate(typed.split("\n")):
        indent = len(line) - len(line.lstrip(" \t"))
        head = ("\n" if index > 0 else "") + line[:indent]
        if head:
            keys.append(head)
        keys.extend(line[indent:])
    return keys


def schedule(keys: Sequence[str], rng: random.Random, cps: float = CPS) -> tuple[Keystroke, ...]:
    """Times for `keys`: the gap before a key grows by a pause when the previous key invites one."""
    mu = math.log(1.0 / cps) - GAP_SIGMA**2 / 2  # the mean gap is 1/cps
    at = 0.0
    times: list[float] = []
    pauses: list[bool] = []
    for index in range(len(keys)):
        gap = min(max(rng.lognormvariate(mu, GAP_SIGMA), MIN_GAP_S), MAX_GAP_S)
        previous = keys[index - 1] if index else ""
        if previous.startswith("\n"):
            gap += LINE_PAUSE_S
            pauses[-1] = True
        elif previous and previous[-1] in PAUSE_AFTER and rng.random() < PUNCT_PAUSE_P:
            gap += PUNCT_PAUSE_S
            pauses[-1] = True
        at += gap
        times.append(round(at, 4))
        pauses.append(False)
    if pauses:
        pauses[-1] = True  # the session ends: the typist waits for the answer
    return tuple(Keystroke(k, t, p) for k, t, p in zip(keys, times, pauses, strict=True))


def make_sessions(
    files: Sequence[Path],
    n_keys: int,
    seed: int,
    cps: float = CPS,
    max_keys: int = MAX_KEYS_PER_SESSION,
) -> list[Session]:
    """Sessions of `max_keys` keys (fewer only where a file ends), cycling over `files` in a seeded
    order, `n_keys` in all."""
    rng = random.Random(seed)
    sources = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        lines = text.splitlines(keepends=True)
        starts = [i for i in range(1, len(lines) - 1) if lines[i].strip() and lines[i].endswith("\n")]
        if starts:
            sources.append((path, lines, starts))
    if not sources:
        raise ValueError("no usable source files (each needs a non-empty line with lines around it)")
    rng.shuffle(sources)
    sessions: list[Session] = []
    total = 0
    while total < n_keys:
        path, lines, starts = sources[len(sessions) % len(sources)]
        start = rng.choice(starts)
        end = start + 1
        while end < len(lines) - 1 and len(split_keystrokes("".join(lines[start:end]))) < max_keys:
            end += 1  # enough lines for a full session; the typist may stop inside the last one
        region = "".join(lines[start:end]).rstrip("\n")
        keys = split_keystrokes(region)[: min(max_keys, n_keys - total)]
        if not keys:
            continue
        index = len(sessions)
        sessions.append(
            Session(
                index=index,
                path=str(path),
                uri=f"file:///bench/latency/{index}/{path.name}",
                language_id=language_id(path),
                text="".join(lines[:start]) + "\n" + "".join(lines[end:]),
                line=start,
                keys=schedule(keys, rng, cps),
                region=region,
            )
        )
        total += len(keys)
    return sessions


def advance(line: int, col: int, text: str) -> tuple[int, int]:
    """The cursor after inserting `text` (columns in UTF-16 code units, as LSP counts by default)."""
    breaks = text.count("\n")
    tail = text.rsplit("\n", 1)[-1]
    width = len(tail.encode("utf-16-le")) // 2
    return (line + breaks, width) if breaks else (line, col + width)
