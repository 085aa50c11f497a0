"""Cut what an instruct model writes after the code: leaked special tokens, markdown fences, chat.

Qwen2.5-Coder-*-Instruct used for FIM tends to finish the middle correctly and then carry on as a
chat answer: a closing "```", a blank line and "This code defines ...", "Explanation:", or special
tokens spelled out as text. Everything from the first such point on is cut.

Rules, in order:
1. a leaked special token (`LEAKED_TOKEN_PATTERNS`) anywhere: cut there;
2. a markdown fence "```" (not where fences are the language's own syntax: `code_fences` in the
   language registry): cut there; except when the suggestion opens with a fence on a line of its
   own while the cursor's line is blank: then the fenced body is the suggestion (its first line
   re-based on the cursor's indentation) and the closing fence cuts, unless the body opens with one
   of the last `REWRITE_LINES` lines before the cursor (the answer rewrites the code instead of
   filling the gap: nothing is left);
3. chat prose (not in prose documents such as markdown or plain text: `prose = "content"`), looked
   for only in lines that start outside strings and comments: a markdown heading of a chat label
   ("## Explanation"), or a line at column 0 that opens with a chat phrase (`CHAT_OPENING`), or, in
   languages where no statement reads like English (`prose = "never"`; not SQL), a line at column 0
   after a blank line that reads as an English sentence (`looks_like_prose`). The cursor's own line
   is never cut when the prefix already has text on it.
"""

from __future__ import annotations

import re

from codegeex_lsp.context.languages import language_for
from codegeex_lsp.postprocess._lexer import lexical_for, lines_inside_block, state_after
from codegeex_lsp.postprocess._text import (
    before_cursor_line,
    first_nonblank,
    indent_cols,
    is_blank,
    line_before_cursor,
    squash,
)
from codegeex_lsp.prompt.types import FimRequest

LEAKED_TOKEN_PATTERNS: tuple[str, ...] = (
    r"<\|[A-Za-z0-9_.:-]{1,40}\|>",  # Qwen/GLM/OpenAI: <|endoftext|>, <|fim_pad|>, <|im_end|>
    "<\uff5c[^\uff5c\\n]{1,40}\uff5c>",  # DeepSeek, full-width bars: <｜fim▁hole｜>
    r"</?(?:fim_(?:prefix|suffix|middle|pad)|file_sep|repo_name|filename|empty_output)>",  # StarCoder
    r"<(?:PRE|SUF|MID|EOT)>",  # CodeLlama infilling
    r"\[gMASK\]|<sop>|<eop>",  # GLM
)
"""Special tokens of the model families we serve, as they appear when decoded as plain text."""
_LEAKED_TOKEN = re.compile("|".join(LEAKED_TOKEN_PATTERNS))

FENCE = "```"
REWRITE_LINES = 3
"""A fenced answer opening with one of this many last non-blank lines of the prefix rewrites them."""
_LABEL = (
    r"(?:Explanation|Example\s+[Uu]sage|Usage|Output|Notes?|Summary|Key\s+[Pp]oints|How\s+[Ii]t\s+[Ww]orks"
    r"|Time\s+[Cc]omplexity|Space\s+[Cc]omplexity|Test\s+[Cc]ases?|Changes|Improvements)"
)
_BULLET = r"(?:\*\*|[-*+]\s+|\d+[.)]\s+)?"
CHAT_HEADING = re.compile(rf"(#{{1,6}})\s+(?:\*\*)?{_LABEL}\b")
CHAT_OPENING = re.compile(
    rf"""{_BULLET}(?:
        {_LABEL}\s*(?:\*\*)?\s*:
      | (?:This|The|Above|Below|Each|Your)\s+(?:above\s+)?(?:updated\s+)?(?:code|function|method|class
            |program|script|implementation|solution|snippet|example|module|approach|version|test)s?
            \b(?!\s*[=(.\[])
      | In\s+(?:this|the\s+above)\s+(?:code|example|implementation|solution|snippet|version)\b
      | Here(?:'s|\u2019s|\s+is|\s+are)\s
      | (?:Sure|Certainly|Of\s+course)\b[,!.]
      | I\s+(?:have|hope|added|updated|fixed|changed|modified)\b | I(?:'ve|'m)\b
      | Let(?:'s|\s+me)\s | You\s+can\s | To\s+use\s+(?:this|the|it)\b
    )""",
    re.VERBOSE,
)
_INLINE_CODE = re.compile(r"`[^`]*`")
_CODE_SIGNS = re.compile(r"[=;{}<>\[\]]|->|=>|::|\w\(|\)\s*$")
_WORD = re.compile(r"[(\"'\u201c]?[A-Za-z][A-Za-z'\u2019-]*[.,:;!?)\"'\u201d]*")


def looks_like_prose(line: str) -> bool:
    """Whether a line reads as an English sentence: capitalized, 4+ words, mostly plain words, and
    none of the signs of code (`=`, `;`, braces, `->`, a call)."""
    text = _INLINE_CODE.sub("code", line.strip())
    text = re.sub(rf"^{_BULLET}", "", text).replace("**", "")
    if not text[:1].isupper() or _CODE_SIGNS.search(text):
        return False
    words = text.split()
    if len(words) < 4:
        return False
    return sum(1 for w in words if _WORD.fullmatch(w)) >= 0.8 * len(words)


def cut_chat_runoff(text: str, request: FimRequest) -> str:
    leaked = _LEAKED_TOKEN.search(text)
    if leaked:
        text = text[: leaked.start()]
    info = language_for(request.language)
    if not info.code_fences:
        text = _cut_fences(text, request)
    if info.prose != "content":
        text = _cut_prose(text, request)
    return text


def _cut_fences(text: str, request: FimRequest) -> str:
    lines = text.split("\n")
    first = first_nonblank(lines)
    line_prefix = line_before_cursor(request.prefix)
    if first is not None and lines[first].lstrip().startswith(FENCE) and is_blank(line_prefix):
        body = lines[first + 1 :]
        start = first_nonblank(body)
        if start is not None and squash(body[start]) in _last_lines(before_cursor_line(request.prefix)):
            return ""  # the answer rewrites the code before the cursor: nothing fits at the cursor
        if body and body[0].startswith(line_prefix):
            body[0] = body[0][len(line_prefix) :]
        text = "\n".join(body)
    fence = text.find(FENCE)
    return text if fence < 0 else text[:fence]


def _last_lines(text: str) -> set[str]:
    """The last `REWRITE_LINES` non-blank lines of text, squashed."""
    found: list[str] = []
    end = len(text)
    while end > 0 and len(found) < REWRITE_LINES:
        start = text.rfind("\n", 0, end - 1) + 1
        line = text[start:end]
        if not is_blank(line):
            found.append(squash(line))
        end = start
    return set(found)


def _cut_prose(text: str, request: FimRequest) -> str:
    line_prefix = line_before_cursor(request.prefix)
    lines = text.split("\n")
    inside = lines_inside_block(text, request.language, state_after(request.prefix, request.language))
    before = before_cursor_line(request.prefix).rstrip("\n")
    previous_blank = is_blank(before[before.rfind("\n") + 1 :])
    for i, line in enumerate(lines):
        absolute = line_prefix + line if i == 0 else line
        if (i == 0 and not is_blank(line_prefix)) or inside[i] or is_blank(line):
            previous_blank = is_blank(absolute)
            continue
        # A line must start at column 0 to be chat; the first one, at the cursor.
        if _is_chat(line, request.language, previous_blank):
            return "\n".join(lines[:i])
        previous_blank = False
    return text


def _is_chat(line: str, language: str, previous_blank: bool) -> bool:
    lex = lexical_for(language)
    stripped = line.strip()
    heading = CHAT_HEADING.match(stripped)
    if heading:
        # "# Usage:" is an ordinary comment where "#" starts one; "## Usage" is a markdown heading.
        return len(heading.group(1)) > 1 or "#" not in lex.line_comments
    comment_starts = (*lex.line_comments, *(lex.block_comment[:1] if lex.block_comment else ()))
    if indent_cols(line) > 0 or stripped.startswith(comment_starts):
        return False
    if CHAT_OPENING.match(stripped):
        return True
    return language_for(language).prose == "never" and previous_blank and looks_like_prose(stripped)
