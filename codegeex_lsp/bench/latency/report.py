"""The report: both sides in columns, the issue's targets, outcomes, usefulness, memory; two charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codegeex_lsp.bench.latency import memory
from codegeex_lsp.bench.latency.stats import OUTCOMES

# The targets on a 2-core host (reported, never asserted by a test).
TARGET_FIRST_TOKEN_P50_MS = 50.0
TARGET_FINAL_P50_MS, TARGET_FINAL_P95_MS = 150.0, 400.0
TARGET_PAUSE_RATIO = 0.5  # ours / the peer's first suggestion after a pause, p50


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _dist(d: dict[str, Any]) -> str:
    return f"{_ms(d['p50'])} / {_ms(d['p95'])} / {_ms(d['p99'])} (n={d['n']})"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def targets(ours: dict[str, Any], peer: dict[str, Any] | None) -> list[tuple[str, str, str, bool | None]]:
    """(metric, target, measured, met) rows."""
    rows: list[tuple[str, str, str, bool | None]] = []

    def le(value: float | None, bound: float) -> bool | None:
        return None if value is None else value <= bound

    rows.append(
        (
            "first token p50",
            f"≤ {TARGET_FIRST_TOKEN_P50_MS:.0f} ms",
            _ms(ours["first_token_p50_ms"]),
            le(ours["first_token_p50_ms"], TARGET_FIRST_TOKEN_P50_MS),
        )
    )
    rows.append(
        (
            "final p50 (all shown)",
            f"≤ {TARGET_FINAL_P50_MS:.0f} ms",
            _ms(ours["final_p50_ms"]),
            le(ours["final_p50_ms"], TARGET_FINAL_P50_MS),
        )
    )
    rows.append(
        (
            "final p95 (all shown)",
            f"≤ {TARGET_FINAL_P95_MS:.0f} ms",
            _ms(ours["final_p95_ms"]),
            le(ours["final_p95_ms"], TARGET_FINAL_P95_MS),
        )
    )
    a, b = (
        ours["first_suggestion_after_pause_p50_ms"],
        (peer or {}).get("first_suggestion_after_pause_p50_ms"),
    )
    ratio = a / b if a is not None and b else None
    rows.append(
        (
            "first suggestion after a pause, p50 ours / peer",
            f"≤ {TARGET_PAUSE_RATIO}",
            "n/a" if ratio is None else f"{ratio:.2f} ({_ms(a)} / {_ms(b)} ms)",
            None if ratio is None else ratio <= TARGET_PAUSE_RATIO,
        )
    )
    ua, ub = ours["usefulness"], (peer or {}).get("usefulness")
    rows.append(
        (
            "usefulness ours vs peer",
            "≥ the peer",
            f"{_pct(ua)} vs {_pct(ub)}",
            None if ua is None or ub is None else ua >= ub,
        )
    )
    return rows


def format_report(result: dict[str, Any], charts: list[str]) -> str:
    meta, ours, peer = result["meta"], result["ours"], result["peer"]
    status = meta.get("server_status") or {}
    backend = status.get("backend") or {}
    sides = [("ours", ours)] + ([("peer", peer)] if peer else [])
    peer_line = (
        f"Peer: `{' '.join(Path(meta['peer_command'][0]).name if i == 0 else a for i, a in enumerate(meta['peer_command']))}`, "
        f"driven through `/infill` as llama.vscode v0.0.63 does (n_cmpl {meta['peer_n_cmpl']}, "
        f"{'greedy' if meta['peer_greedy'] else 'its top-k/top-p sampling, fixed seed'})."
        if peer
        else f"Peer: null — {result['peer_reason']}."
    )
    lines = [
        "# Keystroke latency and usefulness, ours and llama.vscode's stack",
        "",
        f"`{meta['command']}` — {meta['date']}",
        "",
        f"Ours: `codegeex-lsp {' '.join(meta['serve'])}` (the server's defaults unless flags are shown; "
        f"model {status.get('model')}, format {status.get('format')}, backend {backend.get('kind')} "
        f"{backend.get('mode') or ''}; init options {meta['init_options'] or 'none'}).",
        peer_line,
        f"{meta['sessions']} sessions, {meta['keystrokes']} keystrokes per side at ~{meta['cps']:g} chars/s "
        f"(seed {meta['seed']}) over {len(meta['files'])} files; {meta['cpu_count']} CPUs, load average "
        f"{meta['loadavg_start'][0]:.1f} at the start and {meta['loadavg_end'][0]:.1f} at the end.",
        "",
        "## Targets (the issue's; on this host, not asserted by tests)",
        "",
        "| metric | target | measured | met |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m} | {t} | {v} | {_met(ok)} |" for m, t, v, ok in targets(ours, peer)]
    header = "| | " + " | ".join(name for name, _ in sides) + " |"
    rule = "|---|" + "---|" * len(sides)

    def row(label: str, render) -> str:
        return f"| {label} | " + " | ".join(render(s) for _, s in sides) + " |"

    lines += [
        "",
        "## Latency (ms, p50 / p95 / p99, n)",
        "",
        header,
        rule,
        row("first token (from the keystroke)", lambda s: _dist(s["first_token_ms"])),
        row("final, all shown suggestions", lambda s: _dist(s["final_ms"])),
        row("final, shown + typed-through", lambda s: _dist(s["final_displayed_ms"])),
        row("first suggestion after a pause", lambda s: _dist(s["after_pause_ms"])),
        row(
            "... pauses with a suggestion / pauses",
            lambda s: f"{s['pauses_with_suggestion']} / {s['pauses']}",
        ),
        row("... misses counted as endless waits", lambda s: _dist(s["after_pause_all_ms"])),
        "",
        "## Every request's outcome (count; time to it, p50 / p95 ms)",
        "",
        header,
        rule,
        row("requests", lambda s: str(s["requests"])),
    ]
    for outcome in OUTCOMES:
        lines.append(
            row(
                outcome,
                lambda s, o=outcome: (
                    f"{s['outcomes'][o]} ({_ms(s['time_to_outcome_ms'][o]['p50'])} / "
                    f"{_ms(s['time_to_outcome_ms'][o]['p95'])})"
                ),
            )
        )
    lines += [
        row(
            "decodes by mode (ours)",
            lambda s: ", ".join(f"{k} {v}" for k, v in sorted(s["modes"].items())) or "n/a",
        ),
        row(
            "background /infill for the next suggestion (peer)",
            lambda s: str(s.get("background_infills", "-")),
        ),
        "",
        "## Usefulness of shown suggestions",
        "",
        header,
        rule,
        row("typed text matched the whole suggestion", lambda s: _pct(s["usefulness"])),
        row("... its first line", lambda s: _pct(s["usefulness_first_line"])),
        row(
            "characters accepting would have saved (sum; per shown)",
            lambda s: f"{s['chars_saved']}; {s['chars_saved_per_shown']}",
        ),
    ]
    flat = result["memory"]["flatness"]
    lines += ["", "## Memory (our server and its worker)", ""]
    if flat.get("checked"):
        lines.append(
            f"Worker RSS once {flat['fill_docs']} documents were opened: {flat['at_fill_mib']} MiB; after it "
            f"{flat['min_mib']}–{flat['max_mib']} MiB over {flat['samples']} samples, largest deviation "
            f"{100 * flat['max_deviation']:.1f} % (flat within ±{100 * flat['tolerance']:.0f} %: {_met(flat['flat'])})."
        )
    else:
        lines.append(f"Flatness not checked: {flat.get('reason')}.")
    samples = result["memory"]["samples"]
    for label, key in (
        ("Server", "server_mib"),
        ("Worker", "worker_mib"),
        ("llama-server (peer)", "peer_mib"),
    ):
        values = [x[key] for x in samples if x.get(key)]
        if values:
            lines.append(f"{label} RSS {values[0]:.0f} → {values[-1]:.0f} MiB (max {max(values):.0f}).")
    lines += [
        "",
        "Outcomes: `shown` a new suggestion answered before the next keystroke; `typed-through` the rest",
        "of the one on screen; `superseded` answered after the next keystroke (never displayed); `cancelled`",
        'answered "request cancelled" (our server) or given up by the provider (llama.vscode). Times are',
        "this client's, from sending the keystroke's request. First token: ours from the server's decode",
        "records (arrival to first sampled token); the peer's is the wait before its `/infill` plus",
        "llama-server's `prompt_ms` (the first token is sampled from the prompt's logits). Usefulness judges",
        "each shown suggestion against the cut lines the typist went on to type (trailing whitespace free;",
        "a suggestion running past them counts by its first line); saved characters overlap between",
        "consecutive suggestions.",
    ]
    lines += [f"\n![{c}]({c})" for c in charts]
    return "\n".join(lines) + "\n"


def write_latency_chart(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sides = {"ours": result["requests"]["ours"], "peer": result["requests"]["peer"]}
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = (
        ("final latency, shown suggestions (ms)", lambda r: r["outcome"] == "shown"),
        (
            "first suggestion after a pause (ms)",
            lambda r: r["pause_after"] and r["outcome"] in ("shown", "typed-through"),
        ),
    )
    for ax, (title, keep) in zip(axes, panels, strict=True):
        data = {k: [r["latency_ms"] for r in v if keep(r) and r["latency_ms"]] for k, v in sides.items()}
        values = [x for v in data.values() for x in v if x > 0]
        if not values:
            ax.set_title(title + ": no data")
            continue
        bins = np.logspace(np.log10(max(1.0, min(values))), np.log10(max(values) * 1.05), 30)
        for name, v in data.items():
            if v:
                ax.hist(v, bins=bins, histtype="step", linewidth=1.5, label=f"{name} (n={len(v)})")
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel("ms")
        ax.set_ylabel("requests")
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write(result: dict[str, Any], out: Path) -> str:
    """latency.md (returned), latency.png and memory.png in `out`."""
    charts = []
    if write_latency_chart(result, out / "latency.png"):
        charts.append("latency.png")
    samples = [memory.Sample(**s) for s in result["memory"]["samples"]]
    if memory.plot(
        samples, out / "memory.png", result["memory"]["flatness"].get("fill_docs", memory.FILL_DOCS)
    ):
        charts.append("memory.png")
    text = format_report(result, charts)
    (out / "latency.md").write_text(text, encoding="utf-8")
    return text
