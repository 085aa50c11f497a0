"""Cutting infilling tasks out of HumanEval-X: the masks, their ids, and the editor's view of each.

The document is the task's `prompt + canonical_solution` as the dataset ships it (the hidden tests
are never part of it). Holes lie wholly inside the canonical solution, on lines that start inside
it, so `prefix` always holds the whole prompt and the HumanEval-X execution recipe applies
unchanged with the middle put back (`score.program_parts`).

Target lines: non-blank, not brace-only (nothing but `{}()[];,`), not comment-only; the known-bad
problems of the dataset are never cut. Three kinds of mask, each drawn from its own random stream
seeded by (seed, language, problem number, kind), so a task's id and text do not depend on which
other languages, kinds or limits a run asks for:

- `single`: one target line, from the end of its indentation to the end of the line (the newline
  stays): the cursor sits on an emptied, still-indented line, where an editor's cursor would be.
- `multi`: 2..MAX_MULTI_LINES consecutive lines, from the end of the first line's indentation to
  the end of the last line; the first and the last line are targets (blank, brace-only and comment
  lines may lie between them).
- `span`: a random character span: it starts at a random column inside a target line's text and
  ends at a random column (after at least one character) of the same line or of one of the next
  MAX_SPAN_LINES - 1 non-blank lines; both ends may fall mid-token. It must hold more than
  whitespace and brace-only text.

Ids are `<dataset task_id>/<kind>/<where>` with 1-based document lines (and columns for spans):
`Python/12/single/L14`, `Python/12/multi/L14-L17`, `Python/12/span/L14C9-L15C3`.

Problems are drawn in a seeded order over all 164 (never the first N, which are the easy ones), and
every problem belongs to one split by a hash of its number alone: `tune` (what recipes and filters
may be chosen on) or `heldout` (never tuned on; the number to quote). The split is the same in every
language and suite, and every task and result records it.

Each task also records what the context stage (`codegeex_lsp.context.build_context`, the server's
own call) decides at the cursor of the holed document: `editor_mode` NONE/LINE/BLOCK and its reason.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from codegeex_lsp.bench.humaneval_x.dataset import Task, language_info
from codegeex_lsp.bench.humaneval_x.dataset import draw_order as dataset_draw_order
from codegeex_lsp.context import ContextOptions, Document, build_context

KINDS: tuple[str, ...] = ("single", "multi", "span")
KIND_MODES: dict[str, str] = {"single": "LINE", "multi": "BLOCK", "span": "BLOCK"}
"""The mode each mask asks for when `--mode kind` sets it (the default of the direct path)."""

MAX_MULTI_LINES = 8
MAX_SPAN_LINES = 3
DEFAULT_SEED = 1234
_SPAN_TRIES = 200

SPLITS: tuple[str, ...] = ("tune", "heldout")
SPLIT_CHOICES: tuple[str, ...] = ("all", *SPLITS)
_SPLIT_SALT = "codegeex-lsp/split/"



def file_name(language: str) -> str:
    """The task document's name: `main` and the language's first registry extension, except
    `Main.java`, since HumanEval-X's Java tests are `public class Main`."""
    return ("Main" if language == "java" else "main") + language_info(language).extensions[0]


DOCUMENT_ROOT = "/infill"
"""The workspace both paths use: every task is `file:///infill/<file_name(lang)>`, root /infill,
so the prompts (some formats show the path) are the same directly and through the server."""

_BRACE_ONLY = re.compile(r"[\s{}()\[\];,]*")


@dataclass(frozen=True)
class InfillTask:
    """One masked middle: the document is `prefix + middle + suffix`, the editor sees `prefix + suffix`."""

    task_id: str
    kind: str
    source: Task = field(repr=False, compare=False)
    prefix: str
    middle: str
    suffix: str
    editor_mode: str = ""
    editor_reason: str = ""
    suite: str = "humanevalx"
    check: str = ""
    """HumanEval-Infilling: the benchmark's tail appended to the document (`\n test \n check(f)`)."""
    whole_line: bool = False
    """The hole is one whole line with its newline (HumanEval-Infilling single-line)."""

    @property
    def split(self) -> str:
        return problem_split(self.source.number)

    @property
    def language(self) -> str:
        return self.source.language

    @property
    def problem_id(self) -> str:
        return self.source.task_id

    @property
    def holed(self) -> str:
        """The document as the editor has it: the middle removed, the cursor at `len(prefix)`."""
        return self.prefix + self.suffix

    @property
    def document(self) -> str:
        return self.prefix + self.middle + self.suffix

    @property
    def uri(self) -> str:
        return f"file://{DOCUMENT_ROOT}/{file_name(self.language)}"

    @property
    def lsp_language(self) -> str:
        return language_info(self.language).language_id

    @property
    def sha(self) -> str:
        """Digest of the holed document and the answer: a cached generation is reused only for it."""
        data = "\0".join((self.task_id, self.prefix, self.middle, self.suffix))
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, object]:
        return {
            "task_id": self.task_id,
            "problem_id": self.problem_id,
            "kind": self.kind,
            "split": self.split,
            "cursor": len(self.prefix),
            "middle": self.middle,
            "editor_mode": self.editor_mode,
            "editor_reason": self.editor_reason,
            "sha": self.sha,
        }


@dataclass(frozen=True)
class _Line:
    number: int  # 0-based document line
    start: int  # str offset of the line's first character
    end: int  # str offset of its newline (or of the end of the document)
    text: str

    @property
    def indent_end(self) -> int:
        return self.start + len(self.text) - len(self.text.lstrip())


def cut_tasks(
    problem: Task, kinds: Iterable[str] = KINDS, per_task: int = 1, seed: int = DEFAULT_SEED
) -> list[InfillTask]:
    """Up to `per_task` masks of each kind from one problem (fewer when it has too few lines)."""
    if problem.known_bad:
        return []
    document = problem.prompt + problem.canonical_solution
    lines = _solution_lines(document, len(problem.prompt))
    targets = [line for line in lines if is_target_line(problem.language, line.text)]
    cutters = {"single": _single, "multi": _multi, "span": _span}
    tasks: list[InfillTask] = []
    for kind in kinds:
        rng = random.Random(f"{seed}:{problem.language}:{problem.number}:{kind}")
        for start, end, where in sorted(cutters[kind](rng, document, lines, targets, per_task)):
            tasks.append(_make_task(problem, document, kind, start, end, where))
    return tasks


def problem_split(number: int) -> str:
    """`heldout` or `tune` for a problem number: a hash of the number only, about half each."""
    digest = hashlib.sha256(f"{_SPLIT_SALT}{number}".encode()).digest()
    return "heldout" if digest[0] < 128 else "tune"


def draw_order(problems: Sequence[Task], seed: int = DEFAULT_SEED) -> list[Task]:
    """The problems in a seeded order that depends on each problem's number only (the same draw in
    every language, whichever problems are present)."""
    return dataset_draw_order(problems, seed)


def select_tasks(
    problems: Sequence[Task],
    kinds: Sequence[str] = KINDS,
    per_task: int = 1,
    seed: int = DEFAULT_SEED,
    limit: int | None = None,
    split: str = "all",
) -> list[InfillTask]:
    """At most `limit` tasks per kind from problems drawn in `draw_order` over the whole list (of
    one `split`, or all); returned in problem order, then kind."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLIT_CHOICES)}")
    taken: dict[str, int] = dict.fromkeys(kinds, 0)
    selected: list[InfillTask] = []
    for problem in draw_order(problems, seed):
        if split != "all" and problem_split(problem.number) != split:
            continue
        wanted = [kind for kind in kinds if limit is None or taken[kind] < limit]
        if not wanted:
            break
        for task in cut_tasks(problem, wanted, per_task, seed):
            if limit is None or taken[task.kind] < limit:
                taken[task.kind] += 1
                selected.append(task)
    order = {kind: index for index, kind in enumerate(KINDS)}
    return sorted(selected, key=lambda task: (task.source.number, order[task.kind]))


def is_target_line(language: str, text: str) -> bool:
    """Whether a line may be a mask's (first) line: code, not blank, brace-only or a comment."""
    stripped = text.strip()
    if _BRACE_ONLY.fullmatch(stripped):
        return False
    info = language_info(language)
    openers = [*info.line_comments, *info.long_strings]  # a long string there is a docstring
    if info.block_comment:
        openers.append(info.block_comment[0])
        if info.block_comment == ("/*", "*/"):
            openers += ["*", "*/"]  # the inside and end of a /* ... */ block
    return not any(stripped.startswith(opener) for opener in openers)


def editor_context(task_holed: str, cursor: int, language: str) -> tuple[str, str]:
    """(mode, reason) the context stage decides at `cursor` of the holed document."""
    doc = Document(f"file://{DOCUMENT_ROOT}/{file_name(language)}", task_holed, language_info(language).language_id)
    ctx = build_context(
        doc, doc.position_at(cursor), (), ContextOptions(references=False, root=DOCUMENT_ROOT)
    )
    return ctx.mode, ctx.reason


def _solution_lines(document: str, solution_start: int) -> list[_Line]:
    """The lines of the document that start inside the canonical solution (at `solution_start`)."""
    lines: list[_Line] = []
    start = 0
    for number, text in enumerate(document.split("\n")):
        if start >= solution_start:
            lines.append(_Line(number, start, start + len(text), text))
        start += len(text) + 1
    if lines and not lines[-1].text:
        lines.pop()  # the empty "line" after a final newline
    return lines


def _single(
    rng: random.Random, document: str, lines: Sequence[_Line], targets: Sequence[_Line], per_task: int
):
    for line in rng.sample(list(targets), min(per_task, len(targets))):
        yield line.indent_end, line.end, f"L{line.number + 1}"


def _multi(
    rng: random.Random, document: str, lines: Sequence[_Line], targets: Sequence[_Line], per_task: int
):
    candidates = [
        (first.indent_end, last.end, f"L{first.number + 1}-L{last.number + 1}")
        for first in targets
        for last in targets
        if first.number < last.number < first.number + MAX_MULTI_LINES
    ]
    yield from rng.sample(candidates, min(per_task, len(candidates)))


def _span(rng: random.Random, document: str, lines: Sequence[_Line], targets: Sequence[_Line], per_task: int):
    if not targets:
        return
    by_number = {line.number: index for index, line in enumerate(lines)}
    chosen: set[tuple[int, int]] = set()
    for _ in range(_SPAN_TRIES):
        if len(chosen) >= per_task:
            break
        first = rng.choice(list(targets))
        following = [line for line in lines[by_number[first.number] :] if line.text.strip()]
        last = following[rng.randrange(min(MAX_SPAN_LINES, len(following)))]
        start_col = rng.randrange(first.indent_end - first.start, len(first.text))
        lowest = start_col + 1 if last is first else last.indent_end - last.start + 1
        end_col = rng.randint(lowest, len(last.text))
        start, end = first.start + start_col, last.start + end_col
        if _BRACE_ONLY.fullmatch(document[start:end]) or (start, end) in chosen:
            continue
        chosen.add((start, end))
        yield start, end, f"L{first.number + 1}C{start_col + 1}-L{last.number + 1}C{end_col + 1}"


def _make_task(problem: Task, document: str, kind: str, start: int, end: int, where: str) -> InfillTask:
    prefix, middle, suffix = document[:start], document[start:end], document[end:]
    mode, reason = editor_context(prefix + suffix, len(prefix), problem.language)
    return InfillTask(
        task_id=f"{problem.task_id}/{kind}/{where}",
        kind=kind,
        source=problem,
        prefix=prefix,
        middle=middle,
        suffix=suffix,
        editor_mode=mode,
        editor_reason=reason,
    )
