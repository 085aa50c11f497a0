"""Run a `codegeex-lsp` command or an experiment script under another int4 calibration recipe.

The engine's recipe (engine.load: CALIBRATION_TEXTS snippets + CALIBRATION_FIM FIM prompts) is
sized for the 2-minute build. This sets other counts for one process, so the int4 checkpoint it
builds or loads gets its own recipe name (its own cache file, its own result label, never resumed
as the default's) and the same benchmarks can compare the two. An experiment, not a user knob.

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
    """Point engine.load at `texts` plain snippets and `fim` FIM prompts; the new recipe name."""
    from codegeex_lsp.engine import load

    load.CALIBRATION_TEXTS = texts
    load.CALIBRATION_FIM = fim
    load.INT4_RECIPE = (
        f"{load.INT4_MODE}{'-act' if load.INT4_ACT_ORDER else ''}-g{load.INT4_GROUP_SIZE}"
        f"-r{round(100 * load.INT4_RESIDUAL_EDGE)}-ml{texts}-f{fim}-t{load.CALIBRATION_TOKENS}"
        f"-{load.INT4_ARITHMETIC}"
    )
    return load.INT4_RECIPE


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
