"""Prefix KV reuse: output identical to a fresh prefill under edits, and the cache stays in its budget."""

from __future__ import annotations

import pytest
import torch

from codegeex_lsp.cancel import Cancellation
from codegeex_lsp.config import CompletionOptions, EngineOptions
from codegeex_lsp.engine import decode
from codegeex_lsp.engine.decode import generate
from codegeex_lsp.engine.kv_cache import KVCache, PrefixCache, cache_len_for, common_prefix_len
from codegeex_lsp.engine.load import load_model
from codegeex_lsp.engine.service import CompletionService
from codegeex_lsp.prompt.types import FimRequest, Prompt

LOGIT_ATOL = 1e-4  # fp32: the same math over a chunk split differently

BASE = (
    "import os\nimport sys\n\n\ndef fibonacci(n):\n    if n < 2:\n        return n\n"
    "    return fibonacci(n - 1) + fibonacci(n - 2)\n\n\nclass Stack:\n    def __init__(self):\n"
    "        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n"
)
SUFFIX = "\n\nfor i in range(10):\n    print(i, os.getcwd(), sys.argv)\n"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["glm", "qwen2"])
def loaded(request, tiny_model_factory):
    """The tiny model in a suffix-first (CodeGeeX4) and a prefix-first (Qwen2.5-Coder) format."""
    return load_model(
        EngineOptions(model=str(tiny_model_factory(request.param)), dtype="float32", quant="none")
    )


def _services(loaded):
    reuse = CompletionService(loaded, kv_reuse=True, speculative=False)
    fresh = CompletionService(loaded, kv_reuse=False, speculative=False)
    return reuse, fresh


def _edits() -> list[tuple[str, str, str]]:
    """(document, prefix, suffix) as a user edits two documents: type, delete, edit above, switch."""
    steps: list[tuple[str, str, str]] = []
    prefix = BASE
    for ch in "    def pop(self):":  # append, one keystroke at a time
        prefix += ch
        steps.append(("a.py", prefix, SUFFIX))
    for _ in range(3):  # backspace
        prefix = prefix[:-1]
        steps.append(("a.py", prefix, SUFFIX))
    steps.append(("b.js", "function add(a, b) {\n  return a + b;\n}\n", "\nconsole.log(add(1, 2));\n"))
    steps.append(("a.py", prefix + "f)", SUFFIX))  # back to the first document
    prefix = prefix.replace("import sys", "import sys, re") + "f)"  # an edit far above the cursor
    steps.append(("a.py", prefix, SUFFIX))
    steps.append(("a.py", prefix + ":\n        return", SUFFIX + "# more\n"))  # suffix changed too
    steps.append(("b.js", "function add(a, b) {\n  return a + b;\n}\nfunction sub(a, b) {", "\n}\n"))
    steps.append(("a.py", prefix[:40], ""))  # a big deletion
    steps.append(("a.py", prefix[:40], ""))  # the same prompt again
    return steps


def test_reuse_is_token_identical_to_a_fresh_prefill(loaded):
    reuse, fresh = _services(loaded)
    opts = CompletionOptions(max_tokens=16)
    reused_total = 0
    for doc, prefix, suffix in _edits():
        request = FimRequest(prefix=prefix, suffix=suffix, language="python", mode="LINE")
        got = reuse.complete(request, opts, cache_key=doc)
        want = fresh.complete(request, opts, cache_key=doc)
        assert got.raw == want.raw, (doc, prefix[-30:])
        assert got.generated_tokens == want.generated_tokens
        assert got.reused_tokens + got.prefill_tokens == got.prompt_tokens
        assert want.reused_tokens == 0
        reused_total += got.reused_tokens
    assert reused_total > 0, "no step reused the cache: the test would prove nothing"


def test_typing_prefills_only_the_tail(loaded):
    reuse, _fresh = _services(loaded)
    opts = CompletionOptions(max_tokens=4)
    first = reuse.complete(FimRequest(prefix=BASE + "    d", suffix=SUFFIX), opts, cache_key="a.py")
    after = reuse.complete(FimRequest(prefix=BASE + "    de", suffix=SUFFIX), opts, cache_key="a.py")
    assert first.reused_tokens == 0
    # Suffix first, or prefix first with the cursor line carried after the middle token: typing at
    # the cursor appends to the prompt.
    assert reuse.format.order == "SPM" or reuse.format.carries_line
    assert after.prefill_tokens <= 4
    assert after.reused_tokens > after.prefill_tokens
    # Without the carry the suffix follows the prefix: it and the prefix's last tokens are prefilled
    # again.
    off = CompletionOptions(max_tokens=4, carry_line=False)
    first = reuse.complete(FimRequest(prefix=BASE + "    d", suffix=SUFFIX), off, cache_key="b.py")
    after = reuse.complete(FimRequest(prefix=BASE + "    de", suffix=SUFFIX), off, cache_key="b.py")
    if reuse.format.order == "SPM":
        assert after.prefill_tokens <= 4
    else:
        assert len(_ids(reuse.loaded, SUFFIX)) < after.prefill_tokens <= len(_ids(reuse.loaded, SUFFIX)) + 8


def _ids(loaded, text: str) -> list[int]:
    return loaded.tokenizer.encode(text, add_special_tokens=False)


def _prompt(ids: list[int]) -> Prompt:
    return Prompt("raw", "", tuple(ids), ())


@pytest.mark.parametrize("max_new", [1, 2, 9])
def test_generate_with_a_reused_prefix_equals_fresh(loaded, max_new):
    options = CompletionOptions(max_tokens=max_new)
    old = _ids(loaded, BASE + "    def pop")
    new = _ids(loaded, BASE + "    def pop(self):\n        return self.items.pop()\n")
    cache = loaded.model.new_cache(1, 256)
    generate(loaded.model, loaded.tokenizer, _prompt(old), options, cache=cache)
    n = common_prefix_len(old, new)
    assert n > 10
    got = generate(loaded.model, loaded.tokenizer, _prompt(new), options, cache=cache, n_cached=n)
    want = generate(loaded.model, loaded.tokenizer, _prompt(new), options)
    assert (got.raw, got.token_ids, got.finish_reason) == (want.raw, want.token_ids, want.finish_reason)
    assert (got.reused_tokens, got.prefill_tokens) == (n, len(new) - n)


def test_reused_prefix_logits_match_fresh(loaded):
    ids = _ids(loaded, BASE)
    split = len(ids) // 2
    with torch.inference_mode():
        fresh = loaded.model(torch.tensor([ids]), 0, loaded.model.new_cache(), last_only=False)[0]
        cache = loaded.model.new_cache()
        loaded.model(torch.tensor([ids[:split]]), 0, cache)
        tail = loaded.model(torch.tensor([ids[split:]]), split, cache, last_only=False)[0]
    torch.testing.assert_close(tail, fresh[split:], atol=LOGIT_ATOL, rtol=0)


def test_n_candidates_keep_the_prompt_reusable(loaded):
    options = CompletionOptions(max_tokens=6, n=3)
    prompt = _prompt(_ids(loaded, BASE))
    cache = loaded.model.new_cache(1, 256)
    first = generate(loaded.model, loaded.tokenizer, prompt, options, cache=cache)
    again = generate(
        loaded.model, loaded.tokenizer, prompt, options, cache=cache, n_cached=len(prompt.token_ids)
    )
    assert again.reused_tokens == len(prompt.token_ids) - 1  # the last token is recomputed for its logits
    assert (again.raw, again.token_ids) == (first.raw, first.token_ids) and len(first.raw) == 3


def test_cancelled_prefill_keeps_what_it_computed(loaded, monkeypatch):
    monkeypatch.setattr(decode, "PREFILL_CHUNK_TOKENS", 16)
    service = CompletionService(loaded, kv_reuse=True, speculative=False)
    fresh = CompletionService(loaded, kv_reuse=False, speculative=False)
    request = FimRequest(prefix=BASE * 2, suffix=SUFFIX, language="python")
    opts = CompletionOptions(max_tokens=8)

    class CancelAfterTwoChunks(Cancellation):
        """Cancelled from the third read of its flag on (the decode reads it once per chunk)."""

        checks = 0

        def is_cancelled(self) -> bool:
            self.checks += 1
            return self.checks > 2

    cut = service.complete(request, opts, cache_key="a.py", cancel=CancelAfterTwoChunks())
    assert cut.finish_reason == "cancelled"
    assert cut.prefill_tokens == 48
    done = service.complete(request, opts, cache_key="a.py")
    assert done.reused_tokens == 48
    assert done.raw == fresh.complete(request, opts).raw


def _cache(max_len: int) -> KVCache:
    return KVCache(n_layers=2, batch_size=1, n_kv_heads=2, max_len=max_len, head_dim=4, dtype=torch.float32)


def test_prefix_cache_stays_within_its_byte_budget():
    one = _cache(64).nbytes
    lru = PrefixCache(max_bytes=3 * one + one // 2)
    for doc in range(10):
        cache = _cache(64)
        cache.length = 5
        lru.put(f"doc{doc}", [doc, 1, 2, 3, 4], cache)
        assert lru.nbytes <= lru.max_bytes
        assert lru.nbytes == sum(entry[1].nbytes for entry in lru._entries.values())
    assert len(lru) == 3
    assert "doc9" in lru and "doc7" in lru and "doc6" not in lru  # least recently used went first
    lru.take("doc7", [7, 1])  # a take removes the entry: the decode owns the cache meanwhile
    assert "doc7" not in lru and len(lru) == 2
    lru.put("huge", [1], _cache(1024))  # bigger than the whole budget: not kept
    assert "huge" not in lru and lru.nbytes <= lru.max_bytes


def test_evicting_or_dropping_caches_returns_free_heap_pages(monkeypatch):
    from codegeex_lsp.engine import kv_cache, memory

    calls: list[int] = []
    monkeypatch.setattr(kv_cache, "release_free_memory", lambda: calls.append(1) or True)
    one = _cache(64).nbytes
    lru = PrefixCache(max_bytes=2 * one)
    for doc in range(2):
        lru.put(f"doc{doc}", [doc], _cache(64))
    assert calls == []  # within budget: nothing freed, nothing to trim
    lru.put("doc2", [2], _cache(64))
    assert calls == [1]  # doc0 evicted
    lru.discard("doc1")
    lru.clear()
    assert len(calls) == 3
    assert isinstance(memory.release_free_memory(), bool)  # the real call works here (glibc) or is a no-op


def test_prefix_cache_take_matches_the_common_prefix():
    lru = PrefixCache(max_bytes=1 << 20)
    cache = _cache(64)
    cache.length = 40  # decoding wrote past the prompt: only the prompt's positions count
    lru.put("a", [1, 2, 3, 4, 5], cache)
    assert cache.length == 5
    got, n = lru.take("a", [1, 2, 3, 9, 9, 9])
    assert got is cache and n == 3
    assert lru.take("a", [1, 2]) == (None, 0)  # taken already
    lru.put("b", [1, 2], _cache(64))
    assert lru.take("b", [7])[1] == 0


def test_service_cache_memory_is_bounded(loaded):
    budget = 3 * loaded.model.new_cache(1, cache_len_for(200, loaded.model.max_seq_len)).nbytes
    service = CompletionService(loaded, kv_reuse=True, speculative=False, kv_cache_bytes=budget)
    opts = CompletionOptions(max_tokens=4)
    for doc in range(8):
        service.complete(FimRequest(prefix=BASE + f"x{doc} = ", suffix=SUFFIX), opts, cache_key=f"{doc}.py")
        assert service.prefix_cache is not None
        assert service.prefix_cache.nbytes <= budget
    assert 1 <= len(service.prefix_cache) <= 3


def test_kv_cache_truncate_and_resize():
    cache = _cache(8)
    k = torch.arange(2 * 6 * 4, dtype=torch.float32).view(1, 2, 6, 4)
    for layer in range(2):
        cache.update(layer, 0, k, -k)
    cache.truncate(4)
    assert cache.length == 4
    bigger = cache.resized(32)
    assert (bigger.max_len, bigger.length) == (32, 4)
    torch.testing.assert_close(bigger.k[1][:, :, :4], k[:, :, :4], atol=0, rtol=0)
    torch.testing.assert_close(bigger.v[0][:, :, :4], -k[:, :, :4], atol=0, rtol=0)
    with pytest.raises(ValueError):
        cache.truncate(9)
    assert (
        cache_len_for(1, 4096) == 256
        and cache_len_for(257, 4096) == 512
        and cache_len_for(5000, 4096) == 4096
    )
