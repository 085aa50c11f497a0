"""The int4 build's bar: work-weighted so its ETA holds, never ahead of the build, 100 % at the end."""

from __future__ import annotations

import pytest
from torch import nn

from codegeex_lsp.engine.int4_upgrade import _PERCENT
from codegeex_lsp.engine.load import BuildBar, gptq_work

# One-thread GPTQ timings on the embedded model that gptq_work was fitted to (seconds).
MEASURED_S = {(896, 4864): 2.07, (9728, 896): 0.65, (151936, 896): 9.5}
FIT_TOLERANCE = 0.25


def test_gptq_work_follows_the_measured_timings() -> None:
    base = gptq_work(9728, 896) / MEASURED_S[(9728, 896)]
    for (n_out, n_in), seconds in MEASURED_S.items():
        assert gptq_work(n_out, n_in) / base == pytest.approx(seconds, rel=FIT_TOLERANCE)


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(8, 32)
        self.down = nn.Linear(32, 8)
        self.output = nn.Linear(8, 500)


def test_bar_weights_calibration_by_tokens_and_credits_a_linear_when_it_is_done(capsys) -> None:
    messages: list[str] = []
    bar = BuildBar(_Model(), [10, 30], messages.append)
    bar.sequence_done(1)
    first = bar.fraction()
    bar.sequence_done(2)
    calibrated = bar.fraction()
    assert calibrated == pytest.approx(4 * first)  # 40 tokens against 10
    assert 0 < calibrated < 1
    bar.message("gptq: up [32x8]")
    assert bar.fraction() == calibrated  # up is running, not done
    bar.message("gptq: down [8x32]")
    after_up = bar.fraction()
    assert after_up > calibrated
    bar.message("gptq: output [500x8]")
    assert after_up < bar.fraction() < 1  # output still running
    bar.finish()
    assert bar.fraction() == 1.0
    bar.close()
    percentages = [int(m.group(1)) for m in map(_PERCENT.search, messages) if m]
    assert len(percentages) == 5 and percentages == sorted(percentages) and percentages[-1] < 100
    err = capsys.readouterr().err
    assert "int4 build" in err and "100%" in err


def test_bar_never_passes_its_total_when_the_credits_round_above_it(capsys) -> None:
    import warnings

    bar = BuildBar(_Model(), [10, 30], lambda text: None)
    bar.bar.total -= 1e-9 * bar.bar.total  # the credits, summed in their own order, end above it
    seen: list[float] = []
    update = bar.bar.update
    bar.bar.update = lambda n=1: (update(n), seen.append(bar.bar.n))[0]  # every value the bar shows
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's "clamping frac to range [0, 1]"
        bar.sequence_done(2)
        for text in ("gptq: up [32x8]", "gptq: down [8x32]", "gptq: output [500x8]"):
            bar.message(text)
            assert bar.bar.n <= bar.bar.total
        bar.finish()
        assert bar.bar.n == bar.bar.total and bar.fraction() == 1.0
        assert max(seen) <= bar.bar.total
        bar.close()
