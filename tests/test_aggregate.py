"""Aggregation rules: pure functions, no weights."""
from __future__ import annotations

import numpy as np
import pytest

from deepfake_demo.aggregate import (Verdict, confident_mean, decide, decide_file, effective_band,
                                     ensemble_probability, track_probability, worst_track)


def test_ensemble_probability_is_logit_mean():
    p = ensemble_probability({"a": np.array([0.9, 0.5]), "b": np.array([0.9, 0.5])})
    assert np.allclose(p, [0.9, 0.5])
    # 0.99 and 0.5: logit mean = logit(0.99)/2 -> sigmoid ~ 0.909, above the plain mean 0.745
    p = ensemble_probability([np.array([0.99]), np.array([0.5])])
    assert p[0] == pytest.approx(1 / (1 + np.exp(-np.log(99) / 2)), rel=1e-6)
    assert 0.90 < p[0] < 0.92
    with pytest.raises(ValueError):
        ensemble_probability({})


def test_confident_rule_takes_confident_fake_frames():
    # 14 of 32 frames show the swap clearly, the rest look clean-ish: mean would say 0.46
    probs = [0.95] * 14 + [0.05] * 18
    assert np.mean(probs) < 0.5
    assert confident_mean(probs) == pytest.approx(0.95)


def test_confident_rule_real_and_mixed():
    assert confident_mean([0.1] * 30 + [0.5] * 2) == pytest.approx(0.1)  # >= 90% confidently real
    mixed = [0.9] * 5 + [0.5] * 20 + [0.1] * 7
    assert confident_mean(mixed) == pytest.approx(np.mean(mixed))
    assert confident_mean([0.99]) == pytest.approx(0.99)  # an image: one frame
    with pytest.raises(ValueError):
        confident_mean([])


def test_track_strategies_and_unknown():
    assert track_probability([0.2, 0.4], "mean") == pytest.approx(0.3)
    assert track_probability([0.2, 0.4, 0.9], "median") == pytest.approx(0.4)
    with pytest.raises(ValueError, match="unknown aggregation"):
        track_probability([0.5], "vote")


def test_file_takes_most_suspicious_face():
    assert worst_track([("REAL", 0.1), ("FAKE", 0.92), ("FAKE", 0.7)]) == 1
    # a clear FAKE is not hidden by a more suspicious face the models dispute
    assert worst_track([("UNCERTAIN", 0.9), ("FAKE", 0.7)]) == 1
    assert worst_track([("REAL", 0.2), ("UNCERTAIN", 0.45)]) == 1


def test_small_faces_decide_only_when_no_large_face():
    tracks = [("REAL", 0.2), ("FAKE", 0.93)]
    assert worst_track(tracks, sizes=[120, 45], min_size=64) == 0  # the 45 px face is passed over
    assert worst_track(tracks, sizes=[50, 45], min_size=64) == 1  # all small: the usual rule
    assert worst_track(tracks, sizes=[120, 80], min_size=64) == 1


def test_file_verdict_small_face_raises_doubt_but_does_not_convict():
    # a large REAL face and a small FAKE one: the large face decides, the file stays UNCERTAIN
    di, verdict, note = decide_file([("REAL", 0.2), ("FAKE", 0.93)], [120, 45], 64, ids=[1, 2])
    assert (di, verdict) == (0, Verdict.UNCERTAIN)
    assert "face 2 (45 px, FAKE 0.93) is under 64 px" in note and "not clearly real" in note
    # the large face is FAKE: it decides, the small one is only named
    di, verdict, note = decide_file([("FAKE", 0.7), ("REAL", 0.1)], [120, 45], 64)
    assert (di, verdict) == (0, Verdict.FAKE) and "face 2 (45 px" in note and "UNCERTAIN" not in note
    # small REAL faces do not reopen a REAL call; no small face, no note
    assert decide_file([("REAL", 0.2), ("REAL", 0.1)], [120, 45], 64)[1] == Verdict.REAL
    assert decide_file([("REAL", 0.2), ("FAKE", 0.9)], [120, 80], 64) == (1, Verdict.FAKE, "")


def test_band_narrows_near_the_ends():
    assert effective_band(0.5, 0.15) == pytest.approx(0.15)
    assert effective_band(0.9, 0.15) == pytest.approx(0.05)
    assert decide(0.97, threshold=0.9)[0] == Verdict.FAKE  # FAKE stays reachable
    assert decide(0.02, threshold=0.05)[0] == Verdict.REAL


@pytest.mark.parametrize("p,verdict", [(0.9, Verdict.FAKE), (0.65, Verdict.FAKE), (0.6, Verdict.UNCERTAIN),
                                       (0.4, Verdict.UNCERTAIN), (0.35, Verdict.REAL), (0.02, Verdict.REAL)])
def test_decide_band(p, verdict):
    v, reason = decide(p, threshold=0.5, band=0.15)
    assert v == verdict and reason and "\n" not in reason


def test_no_face_is_not_real_and_disagreement_is_uncertain():
    v, reason = decide(None)
    assert v == Verdict.NO_FACE and "not a REAL" in reason
    v, reason = decide(0.7, member_probs={"xception": 0.95, "effnet": 0.1})
    assert v == Verdict.UNCERTAIN and "disagree" in reason
    v, _ = decide(0.7, member_probs={"xception": 0.8, "effnet": 0.6})
    assert v == Verdict.FAKE


def test_ensemble_temperature_scales_the_mean_logit():
    p = ensemble_probability([np.array([0.9]), np.array([0.7])])
    z = np.log(p / (1 - p))
    q = ensemble_probability([np.array([0.9]), np.array([0.7])], temperature=2.0)
    assert np.log(q / (1 - q)) == pytest.approx(z / 2.0)


def test_reason_never_prints_the_probability_equal_to_the_edge_it_crossed():
    v, reason = decide(0.346, threshold=0.5, band=0.15)
    assert v == Verdict.REAL and "0.346 is below 0.350" in reason
    v, reason = decide(0.354, threshold=0.5, band=0.15)
    assert v == Verdict.UNCERTAIN and "0.354 is within the uncertain band 0.350-0.650" in reason
    assert "0.30 is below 0.35" in decide(0.3, threshold=0.5, band=0.15)[1]
    assert "0.3496 is below 0.3500" in decide(0.3496, threshold=0.5, band=0.15)[1]
    assert "0.6496 is within the uncertain band 0.3500-0.6500" in decide(0.6496, threshold=0.5, band=0.15)[1]
    assert "0.3751 is within the uncertain band 0.3750-0.6250" in decide(0.3751, threshold=0.5, band=0.125)[1]
