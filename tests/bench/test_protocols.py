"""HumanEval-X protocols: CodeGeeX's stop and cleanup rules, the instruct extraction, the prompts the
tiny model is given in each protocol, and runs that record their protocol."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from codegeex_lsp.bench.humaneval_x import generate as generate_module
from codegeex_lsp.bench.humaneval_x import run
from codegeex_lsp.bench.humaneval_x.dataset import DEFAULT_DATA_DIR, load_tasks
from codegeex_lsp.bench.humaneval_x.execute import execute
from codegeex_lsp.bench.humaneval_x.instruct import (
    INSTRUCTION,
    QWEN_SYSTEM,
    RESPONSE_PREFIX,
    completion_from_reply,
    extract_code,
    qwen_cut,
    qwen_prompt_text,
    qwen_reply_finished,
    reply_finished,
    sanitize,
)
from codegeex_lsp.bench.humaneval_x.report import REPORT_FILE, RESULTS_FILE
from codegeex_lsp.bench.humaneval_x.stops import codegeex_cleanup, codegeex_finished, postprocess
from codegeex_lsp.bench.humaneval_x.toolchains import find_toolchain, installed
from codegeex_lsp.errors import InputError

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_codegeex_python_rules() -> None:
    body = "    return x + 1\n"
    assert not codegeex_finished("python", body)
    assert codegeex_finished("python", body + "\nprint(f(1))\n")
    assert codegeex_finished("python", body + "x = 3\n")  # any unindented line ends the function
    # cleanup cuts at the last occurrence of each end word, in CodeGeeX's order
    assert codegeex_cleanup("python", body + "\n\ndef g():\n    pass\n") == body + "\n"
    assert codegeex_cleanup("python", body + "\nassert f(1) == 2\n") == body
    assert codegeex_cleanup("python", body) == body


def test_codegeex_brace_rules() -> None:
    assert codegeex_finished("cpp", "  return 1;\n}")
    assert not codegeex_finished("cpp", "  if (x) {\n    return 1;\n  }")
    assert codegeex_cleanup("cpp", "  return 1;\n}\nint main() {}\n") == "  return 1;\n}\nint main() {}"
    assert codegeex_cleanup("js", "  return 1;\n}\n\nconsole.log(f(2));\n") == "  return 1;\n}"
    assert codegeex_cleanup("go", "  return 1\n}\n\n// Example\nfunc main() {\n}\n") == "  return 1\n}"
    # Java: the class the prompt opened is closed again
    assert codegeex_cleanup("java", "        return 1;\n    }") == "        return 1;\n    }\n}"
    main = "        return 1;\n    }\n    public static void main(String[] a) {\n    }\n}\n"
    assert codegeex_cleanup("java", main) == "        return 1;\n    }\n    }"
    with pytest.raises(ValueError):
        codegeex_finished("cobol", "")


@pytest.mark.parametrize("language", ["python", "cpp", "java", "js", "go", "rust"])
def test_codegeex_cleanup_keeps_canonical_solutions_executable(language: str) -> None:
    if not installed(language) or not find_toolchain(language).available:
        pytest.skip(f"{language} toolchain unavailable: {find_toolchain(language).reason}")
    task = load_tasks(language)[0]
    junk = "\n\nprint(1)\n" if language == "python" else "\n\n// trailing\n"
    code = postprocess("codegeex", language, task.prompt, task.canonical_solution + junk)
    assert execute(task, code, find_toolchain(language)).status == "passed"


REPLY = """Here is the solution:
```python
from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i, a in enumerate(numbers):
        for j, b in enumerate(numbers):
            if i != j and abs(a - b) < threshold:
                return True
    return False


print(has_close_elements([1.0, 2.0], 0.5))
assert has_close_elements([1.0], 0.5) is True
if __name__ == "__main__":
    input()
```
This checks every pair."""


def test_instruct_extraction_and_sanitizing() -> None:
    code = extract_code(REPLY)
    assert code.startswith("from typing import List") and "input()" in code
    clean = sanitize(code)
    assert "def has_close_elements" in clean
    assert "print(" not in clean and "assert" not in clean and "__main__" not in clean
    assert extract_code("no fence at all") == "no fence at all"
    assert extract_code("```\nx = 1\n```\n```python\ndef f():\n    pass\n```") == "def f():\n    pass\n"
    assert completion_from_reply("```python\n    return 1\n```") == "    return 1\n"
    assert sanitize("def broken(:\n") == ""  # nothing in it parses: nothing of it runs


def test_a_reply_cut_at_max_tokens_keeps_its_longest_parsable_part() -> None:
    # The model closed its function, then printed examples until max_tokens cut it mid-call: the
    # usual extraction (EvalPlus code_extract) keeps the longest run of lines that parses.
    reply = (
        "```python\nimport math\n\n\ndef area(r):\n    return math.pi * r * r\n\n\n"
        "print(area(1))  # 3.14\nprint(area(2)\nprint(ar"
    )
    code = completion_from_reply(reply)
    assert "def area(r):\n    return math.pi * r * r" in code and code.lstrip().startswith("import math")
    assert "print" not in code
    compile(code, "answer", "exec")


def test_the_reply_ends_at_its_closing_fence() -> None:
    assert not reply_finished("def f():\n    return 1\n")
    assert reply_finished("def f():\n    return 1\n```\n")
    assert reply_finished("```\n")


def test_instruct_answers_run_with_the_tests() -> None:
    if not installed("python") or not find_toolchain("python").available:
        pytest.skip("python toolchain unavailable")
    task = load_tasks("python")[0]
    toolchain = find_toolchain("python")
    assert execute(task, postprocess("instruct", "python", task.prompt, REPLY), toolchain).status == "passed"
    wrong = REPLY.replace("return True\n    return False", "return False\n    return False")
    assert execute(task, postprocess("instruct", "python", task.prompt, wrong), toolchain).status == "failed"


def test_qwen_harness_request_is_its_literal_chatml_string() -> None:
    text = qwen_prompt_text("def f():\n    \"\"\"Doc.\"\"\"\n\n")
    assert text == (
        f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n"
        "Can you complete the following Python function?\n```python\ndef f():\n    \"\"\"Doc.\"\"\"\n```\n"
        "<|im_end|>\n<|im_start|>assistant\n```python\n"
    )


def test_qwen_harness_stops_and_cuts_like_its_vllm_call() -> None:
    body = "def f(x):\n    # keep: indented comments are code\n    return x + 1\n"
    assert not qwen_reply_finished(body)
    for tail in ("\n# Test\nf(1)\n", "\nprint(f(1))", "\nif __name__ == '__main__':\n", "\n```\n"):
        assert qwen_reply_finished(body + tail)
        assert qwen_cut(body + tail) == body  # the stop string and all after it are dropped
    assert qwen_cut("def f():\n    return '```'") == "def f():\n    return '"  # theirs splits at any fence
    # The first stop wins, as vLLM stops at the first one generated.
    assert qwen_cut("def f():\n    return 1\n```\n# later") == "def f():\n    return 1"


def test_qwen_harness_answers_run_with_the_tests() -> None:
    if not installed("python") or not find_toolchain("python").available:
        pytest.skip("python toolchain unavailable")
    task = load_tasks("python")[0]
    toolchain = find_toolchain("python")
    reply = REPLY.split("```python\n")[1].split("\n\n\nprint(")[0] + "\n\n# Example usage\nprint(1)\n"
    assert reply.startswith("from typing import List") and "return False" in reply
    code = postprocess("instruct-qwen", "python", task.prompt, reply)
    assert "print(" not in code and "Example" not in code
    assert execute(task, code, toolchain).status == "passed"
    wrong = reply.replace("return True\n    return False", "return False\n    return False")
    assert execute(task, postprocess("instruct-qwen", "python", task.prompt, wrong), toolchain).status == "failed"


@pytest.fixture
def chat_model_dir(tiny_model_factory, tmp_path: Path) -> Path:
    """The tiny Qwen2 model with a ChatML chat template, like the Instruct model's."""
    path = tmp_path / "tiny-chat"
    shutil.copytree(tiny_model_factory("qwen2"), path)
    (path / "chat_template.jinja").write_text(CHATML)
    return path


def test_each_protocol_gives_the_model_its_own_prompt(chat_model_dir: Path, monkeypatch) -> None:
    seen: list[list[int]] = []
    real_generate = generate_module.generate

    def spy(model, tokenizer, prompt, options, **kwargs):
        seen.append(list(prompt.token_ids))
        return real_generate(model, tokenizer, prompt, options, **kwargs)

    monkeypatch.setattr(generate_module, "generate", spy)
    prompt = load_tasks("python")[0].prompt
    for protocol in ("codegeex", "fim", "instruct", "instruct-qwen"):
        generator, info = generate_module.make_generator(str(chat_model_dir), "none", protocol)
        samples = generator.generate(prompt, "python", n=1, temperature=0.0, max_tokens=4)
        assert len(samples) == 1 and isinstance(samples[0], str)
        assert protocol in info.name or protocol == "fim"
        if protocol == "instruct":
            assert samples[0].startswith("```python\n")  # the prefilled fence stays on the sample
    tokenizer = generator.service.loaded.tokenizer
    codegeex_ids, fim_ids, instruct_ids, qwen_ids = seen
    assert codegeex_ids == tokenizer.encode(prompt, add_special_tokens=False)  # raw, no FIM wrapper
    assert tokenizer.decode(fim_ids).count("<|fim_") >= 2 and fim_ids != codegeex_ids
    chat = tokenizer.decode(instruct_ids)
    assert chat.startswith("<|im_start|>user\n" + INSTRUCTION)
    assert chat.endswith("<|im_start|>assistant\n" + RESPONSE_PREFIX + "\n```python\n")
    assert prompt.strip() in chat
    assert tokenizer.decode(qwen_ids) == qwen_prompt_text(prompt)  # the literal string, special tokens kept
    assert qwen_ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3


def test_runs_record_their_protocol_and_keep_variants_apart(chat_model_dir: Path, tmp_path: Path) -> None:
    if not installed("python") or not find_toolchain("python").available:
        pytest.skip("python toolchain unavailable")
    # The two shortest prompts: the chat-wrapped prompt must fit the tiny model's 512 positions.
    with gzip.open(DEFAULT_DATA_DIR / "humanevalx_python.jsonl.gz", "rt") as lines:
        rows = sorted(map(json.loads, lines), key=lambda r: len(r["prompt"]))
    data = tmp_path / "data"
    data.mkdir()
    with gzip.open(data / "humanevalx_python.jsonl.gz", "wt") as sink:
        sink.writelines(json.dumps(row) + "\n" for row in rows[:2])
    out = tmp_path / "out"
    base = ["--langs", "python", "--max-tokens", "8", "--model", str(chat_model_dir), "--data", str(data)]
    base += ["--quant", "none"]  # the tiny model in float: these tests are about the protocols
    base += ["--out", str(out), "--workers", "2"]
    for protocol, variant in (("codegeex", "fp"), ("fim", "fp-fim"), ("instruct", "fp-instruct")):
        assert run.main([*base, "--protocol", protocol]) == 0
        results = json.loads((out / variant / RESULTS_FILE).read_text())
        assert results["settings"]["protocol"] == protocol
        assert results["languages"]["python"]["n_tasks"] == 2
        assert results["host"]["cpu"]
    report = (out / REPORT_FILE).read_text()
    assert "fp vs fp-fim" in report and "exact McNemar" in report
    assert "protocol: codegeex: raw prompt continued left to right" in report


@pytest.mark.parametrize("protocol", ["instruct", "instruct-qwen"])
def test_instruct_is_python_only(protocol: str) -> None:
    args = run.build_parser().parse_args(["--langs", "python,java", "--protocol", protocol])
    with pytest.raises(InputError, match="Python only"):
        run.options_from_args(args)


def test_a_fim_run_is_not_resumed_as_codegeex(tmp_path: Path) -> None:
    legacy = {"model": "m", "model_hash": "h", "quant": "none", "n": 1, "temperature": 0.0}
    legacy |= {"max_tokens": 512, "canonical": False}
    (tmp_path / "fp").mkdir()
    (tmp_path / "fp" / "settings.json").write_text(json.dumps(legacy))  # recorded before --protocol
    with pytest.raises(InputError, match="protocol"):
        run._claim_directory(tmp_path / "fp", {**legacy, "protocol": "codegeex"})
    run._claim_directory(tmp_path / "fp", {**legacy, "protocol": "fim"})
