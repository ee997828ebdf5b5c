"""The grokking DMFT against the N -> infinity simulation over the issue-14 grid
(dmft/grokking_agreement.py), and the curve times it reads (dmft/grokking_timing.py)."""

import numpy as np
import pytest

from dmft.grokking_agreement import agreement
from dmft.grokking_timing import crossing_time, delay, grokking_time, half_drop_time


def test_curve_times_on_closed_forms():
    """Closed forms: the half drop of 2 exp(-t) (sampled every 0.1) is at ln 2 (linear
    interpolation error < 0.005), a plateau-then-drop sigmoid groks where it reaches half its
    maximum, and the delay between two shifted sigmoids is the shift."""
    t = np.arange(0, 20, 0.5)
    fine = np.arange(0, 20, 0.1)
    assert half_drop_time(fine, 2 * np.exp(-fine)) == pytest.approx(np.log(2), abs=0.005)
    late = 3 - 2.5 / (1 + np.exp(-(t - 10)))
    assert grokking_time(t, late) == pytest.approx(10 - np.log(2.5 / 1.5 - 1), abs=0.05)
    wide = np.arange(-10, 20, 0.5)
    train, test = 1 / (1 + np.exp(wide - 3)), 1 / (1 + np.exp(wide - 8))
    assert delay(wide, train, test) == pytest.approx(5.0, abs=0.02)
    assert np.isnan(crossing_time(t, np.ones_like(t), 0.5))
    with pytest.raises(ValueError, match="shapes"):
        crossing_time(t, t[:-1], 0.5)


@pytest.mark.slow
def test_agreement_at_D_100():
    """D = 100, eps = 0.02, P/D = 5, 8 seeds, teacher scale matched per seed, M = 1000,
    M_R = 32, rank 16 (`python benchmarks/dmft_agreement.py --dims 100 --eps 0.02 --ratios 5
    --solve n_samples=1000 n_response=32 bulk_rank=16 tol=1e-5`; run on a GPU in this session:
    test L2 10.7 / 10.7 / 9.1 / 5.7%, grokking time -6.6 / -8.3 / -9.7 / -10.9%, delay
    -35.6 / -33.2 / -29.0 / -22.4% for alpha = 0.25, 0.5, 1, 2). Asserts what was measured: the
    curves within 12%, grokking within 12% and early, and the delay too short by 20-40% (the
    open problem of issue 14), its error shrinking as alpha grows. About 1 h on 2 CPU cores."""
    rows = agreement(100, [0.25, 0.5, 1.0, 2.0], 0.02, 5.0, 8, n_samples=1000, n_response=32,
                     bulk_rank=16, tol=1e-5)
    for row in rows:
        assert row["test_l2"] < 0.12
        assert -0.12 < row["grok"] < 0.0
        assert -0.40 < row["delay"] < -0.20
    assert rows[-1]["delay"] > rows[0]["delay"]
