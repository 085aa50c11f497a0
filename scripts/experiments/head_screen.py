"""How coarse may the lm head's screen be? Chosen on held-out code, never on benchmark tasks.

The fp32 model's final-norm outputs on held-out code in four languages (the texts of
int4_output_bits.py: neither calibration corpus nor benchmark) are split at random, with a fixed
seed, into a half that fits the principal directions (standing in for the calibration Hessian) and a
half that is scored. Each screen (plain int4 rows, or int4 rows over the top r principal directions,
rounded to nearest per 32 inputs) is scored by how often fp's top token is among its best K
(recall@K: rescoring those K exactly then gives fp's top token), by its own top-1 agreement, and by
KL(fp || screen with its best K rescored exactly) for sampling. `--act-int8` quantizes the screen's
inputs as the kernels do (int8 per 32, absmax / 127); `--smooth a` divides principal coordinate j
by lambda_j^(a/2) (lambda_j: its Hessian eigenvalue) and multiplies the screen's column j by as
much, so the int8 blocks see coordinates of like size (SmoothQuant's migration, a = its alpha).

    OMP_NUM_THREADS=2 python scripts/experiments/head_screen.py --out docs/results/quant/head_screen.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from int4_output_bits import host_texts  # a sibling script


def rtn_int4(w: torch.Tensor, group: int = 32) -> torch.Tensor:
    """Asymmetric 4-bit round-to-nearest per `group` inputs, dequantized."""
    blocks = w.reshape(w.shape[0], -1, group)
    lo, hi = blocks.amin(-1, keepdim=True), blocks.amax(-1, keepdim=True)
    step = (hi - lo).clamp_min(1e-8) / 15
    return (((blocks - lo) / step).round().clamp(0, 15) * step + lo).reshape(w.shape)


def act_int8(z: torch.Tensor, block: int = 32) -> torch.Tensor:
    """The kernels' activation quantization, dequantized: int8 per `block` inputs, absmax / 127."""
    blocks = z.reshape(z.shape[0], -1, block)
    step = blocks.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127
    return (torch.round(blocks / step) * step).reshape(z.shape)


def score(ref: torch.Tensor, approx: torch.Tensor, ks: tuple[int, ...]) -> dict:
    top = ref.argmax(-1)
    ref_lp = torch.log_softmax(ref, -1)
    row: dict[str, float] = {"top1_agree": float((approx.argmax(-1) == top).float().mean())}
    for k in ks:
        best = approx.topk(k, -1).indices
        row[f"recall@{k}"] = float((best == top[:, None]).any(-1).float().mean())
        mixed = approx.clone().scatter_(1, best, ref.gather(1, best))
        lp = torch.log_softmax(mixed, -1)
        row[f"kl_rescored@{k}"] = float((ref_lp.exp() * (ref_lp - lp)).sum(-1).mean())
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts-per-language", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--positions", type=int, default=2000, help="scored positions (the rest fit)")
    parser.add_argument("--dims", default="256,384,448,512,640")
    parser.add_argument("--act-int8", action="store_true", help="int8 screen inputs, as the kernels")
    parser.add_argument("--smooth", type=float, default=0.0, help="migration strength a (0: none)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)

    from codegeex_lsp.config import EngineOptions
    from codegeex_lsp.engine import load
    from codegeex_lsp.quant.screened_head import principal_directions

    fp = load.load_model(EngineOptions(quant="none", dtype="float32", threads=2), progress=lambda _m: None)
    tok = fp.tokenizer
    states: list[torch.Tensor] = []
    hook = fp.model.norm.register_forward_hook(lambda _m, _i, out: states.append(out[0].detach().clone()))
    with torch.inference_mode():
        for _, text in host_texts(args.texts_per_language, 4 * args.max_tokens):
            ids = tok.encode(text, add_special_tokens=False)[: args.max_tokens]
            fp.model(torch.tensor([ids]), 0, fp.model.new_cache(max_len=len(ids)), last_only=False)
    hook.remove()
    h = torch.cat(states).float()
    order = torch.randperm(len(h), generator=torch.Generator().manual_seed(0))
    scored, fit = h[order[: args.positions]], h[order[args.positions :]]
    w = fp.model.output.weight.detach().float()
    del fp
    ref = scored @ w.T
    ks = (16, 64, 256, 1024)
    quant_in = act_int8 if args.act_int8 else (lambda z: z)
    rows = {"int4 head (4.86 bits, all 896 inputs)": score(ref, quant_in(scored) @ rtn_int4(w).T, ks)}
    print(json.dumps(rows, indent=1), flush=True)
    hessian = fit.T @ fit
    for r in (int(d) for d in args.dims.split(",")):
        proj = principal_directions(hessian, r)
        scale = torch.diag(proj.T @ hessian @ proj).clamp_min(1e-12) ** (args.smooth / 2)
        label = f"screen: int4 over {r} principal directions"
        rows[label] = score(ref, quant_in((scored @ proj) / scale) @ rtn_int4((w @ proj) * scale).T, ks)
        print(label, json.dumps(rows[label]), flush=True)
    result = {
        "positions_scored": len(scored),
        "positions_fit": len(fit),
        "act_int8": args.act_int8,
        "smooth": args.smooth,
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
