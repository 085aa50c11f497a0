"""Run a `codegeex-lsp` command or an experiment script under another int4 calibration recipe.

The engine's int4 recipes are the rungs of engine.load.INT4_LADDER. This makes one other recipe
the only rung for one process (in-process loads only: the server's background builds run in
processes of their own), so the checkpoint it builds or loads gets its own recipe name (its own
cache file, its own result label, never resumed as another's) and the same benchmarks can compare
recipes. An experiment, not a user knob.

    OMP_NUM_THREADS=1 python scripts/experiments/with_recipe.py --texts 36 --fim 72 -- \\
        bench humanevalx --workers 1 --out test-artifacts/humanevalx-cal6x
    OMP_NUM_THREADS=1 python scripts/experiments/with_recipe.py --texts 36 --fim 72 -- \\
        scripts/experiments/int4_output_bits.py --variants ""
"""

from __future__ import annotations

import argparse
import runpy
import sys


def set_recipe(texts: int, fim: int) -> str:
    """Make `texts` plain snippets + `fim` FIM prompts engine.load's only int4 rung; its name."""
    from codegeex_lsp.engine import load

    recipe = load.Int4Recipe(texts, fim)
    load.INT4_LADDER = (recipe,)
    load.INT4_RECIPE = recipe.name
    return recipe.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, required=True, help="plain corpus snippets (<= 36 files)")
    parser.add_argument("--fim", type=int, required=True, help="FIM prompts cut from the corpus")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then a script.py or codegeex-lsp arguments")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("nothing to run")
    recipe = set_recipe(args.texts, args.fim)
    print(f"with_recipe: int4 recipe {recipe}", file=sys.stderr, flush=True)
    if command[0].endswith(".py"):
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")
        return 0
    from codegeex_lsp.cli import main as cli_main

    return int(cli_main(command) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
