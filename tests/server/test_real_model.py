"""The server with the real embedded model: suggestions in a Python and a Go function body parse.

Slow (loads the embedded model, decodes on the CPU): `pytest -m slow tests/server`.
"""

from __future__ import annotations

import pytest

from codegeex_lsp.config import DEFAULT_MODEL
from codegeex_lsp.context import language_for, parser_for
from tests.server.helpers import (
    FAST_DEBOUNCE,
    inline,
    open_doc,
    start_client,
    stop_client,
    suggestion,
    wait_state,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CASES = [
    (
        "python",
        "file:///home/user/project/stats.py",
        "import math\n\n\ndef mean(values):\n    return sum(values) / len(values)\n\n\n"
        'def stdev(values):\n    """Sample standard deviation of a list of floats."""\n    \n\n\n'
        "print(stdev([1.0, 2.0, 4.0]))\n",
        (9, 4),
    ),
    (
        "go",
        "file:///home/user/project/stack.go",
        'package main\n\nimport "fmt"\n\n// Sum returns the sum of the ints in xs.\n'
        "func Sum(xs []int) int {\n\t\n}\n\nfunc main() {\n\tfmt.Println(Sum([]int{1, 2, 3}))\n}\n",
        (6, 1),
    ),
]


def insert_at(text: str, line: int, character: int, inserted: str) -> str:
    lines = text.split("\n")
    lines[line] = lines[line][:character] + inserted + lines[line][character:]
    return "\n".join(lines)


def has_error(language: str, text: str) -> bool:
    tree = parser_for(language_for(language)).parse(text.encode("utf-8"))
    return tree.root_node.has_error


async def test_real_model_suggestions_parse():
    client, _ = await start_client(
        DEFAULT_MODEL, init_options={"debounce": FAST_DEBOUNCE}, extra=("--dtype", "auto", "--threads", "2")
    )
    try:
        await wait_state(client, timeout_s=600)
        for language, uri, text, (line, character) in CASES:
            assert not has_error(language, text), f"{language} sample must parse before completion"
            open_doc(client, uri, text, language)
            result = await inline(client, uri, line, character)
            completion = suggestion(result)
            print(f"{language} suggestion: {completion!r}")
            assert completion.strip(), f"{language}: empty suggestion"
            completed = insert_at(text, line, character, completion)
            assert not has_error(language, completed), (
                f"{language}: suggestion breaks the syntax:\n{completed}"
            )
    finally:
        await stop_client(client)
