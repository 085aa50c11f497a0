"""Is the screened head's higher KL its tail? The same int4 model scored with more candidates.

Every third held-out text of int4_output_bits.py, op by op (all-exact rescoring of 151,936 rows per
position does not fit in memory here, so 256 and 4,096 only).

    OMP_NUM_THREADS=2 python scripts/experiments/head_tail_kl.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from int4_output_bits import compare, host_texts, logits_of

from codegeex_lsp.config import EngineOptions
from codegeex_lsp.engine import load

torch.set_num_threads(2)
fp = load.load_model(EngineOptions(quant="none", dtype="float32", threads=2), progress=lambda m: None)
tok = fp.tokenizer
seqs = [(lang, tok.encode(t, add_special_tokens=False)[:384]) for lang, t in host_texts(6, 4 * 384)][::3]
ref = [logits_of(fp.model, ids) for _, ids in seqs]
del fp
eng = load.load_model(EngineOptions(quant="int4", threads=2, int4_build="all"), progress=lambda m: None)
head = eng.model.output
for k in (256, 4096):
    head.candidates = k
    r = compare(ref, eng.model, seqs)
    print(k, {a: r[a] for a in ("top1_agree", "mean_kl", "perplexity", "tokens")}, flush=True)
