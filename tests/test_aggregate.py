"""Aggregation rules: pure functions, no weights."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deepfake_demo.aggregate import (Verdict, band_edges, confident_mean, decide, decide_file, decide_frame,
                                     decide_track, effective_band, ensemble_probability, face_size_px,
                                     track_probability, worst_track)
from deepfake_demo.config import DECISION
from deepfake_demo.report import FaceObservation, FaceTrack

RULE = replace(DECISION, decisive_face_px=64)


def _obs(p: float, side: float = 120.0, detail: float | None = 10.0, models=None, k: int = 0) -> FaceObservation:
    models = {"a": p, "b": p} if models is None else models
    return FaceObservation(frame_index=k, time_s=k / 10, box=(10.0, 10.0, 10.0 + side, 10.0 + side * 1.2),
                           detection_prob=0.99, fake_probability=p, models=models,
                           verdict=decide_frame(p, models, RULE), detail=detail)


def _track(tid: int, probs, side: float = 120.0, detail: float | None = 10.0, rule=RULE) -> FaceTrack:
    """A face track decided by decide_track, as the pipeline makes one."""
    obs = tuple(_obs(p, side, detail, k=k) for k, p in enumerate(probs))
    call = decide_track(obs, rule)
    return FaceTrack(id=tid, fake_probability=call.fake_probability, verdict=call.verdict, reason=call.reason,
                     models=call.models, observations=obs)


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
    d = decide_file([_track(1, [0.2], 120), _track(2, [0.93], 45)], RULE)
    assert (d.decider, d.verdict) == (0, Verdict.UNCERTAIN)
    assert d.reason.startswith("face 1 of 2 decides: fake probability 0.20 is below")
    assert "face 2 (45 px, FAKE 0.93) is under 64 px" in d.reason and "not clearly real" in d.reason
    # the large face is FAKE: it decides, the small one is only named
    d = decide_file([_track(1, [0.7], 120), _track(2, [0.1], 45)], RULE)
    assert (d.decider, d.verdict) == (0, Verdict.FAKE) and "face 2 (45 px" in d.reason
    assert "UNCERTAIN" not in d.reason
    # small REAL faces do not reopen a REAL call; no small face, no note
    assert decide_file([_track(1, [0.2], 120), _track(2, [0.1], 45)], RULE).verdict == Verdict.REAL
    d = decide_file([_track(1, [0.2], 120), _track(2, [0.9], 80)], RULE)
    assert (d.decider, d.verdict) == (1, Verdict.FAKE) and "too small" not in d.reason and not d.warnings
    # one face: its own reason, no "decides" preamble
    one = _track(1, [0.9])
    assert decide_file([one], RULE).reason == one.reason and "decides" not in one.reason


def test_face_size_is_the_median_shorter_side():
    assert face_size_px([(0, 0, 50, 80), (0, 0, 60, 40), (10, 10, 80, 110)]) == pytest.approx(50)
    assert _track(1, [0.5, 0.5], side=45).size_px == pytest.approx(45)
    with pytest.raises(ValueError):
        face_size_px([])


def test_soft_faces_warn_and_weaken_a_fake_but_not_when_small_and_passed_over():
    soft_fake = _track(1, [0.95], detail=2.0)
    assert soft_fake.verdict == Verdict.FAKE and "the face is soft" in soft_fake.reason
    assert "soft" not in _track(1, [0.95], detail=10.0).reason  # sharp: no note
    assert "soft" not in _track(1, [0.1], detail=2.0).reason  # a REAL call needs no such note
    d = decide_file([soft_fake], RULE)
    assert len(d.warnings) == 1 and d.warnings[0].startswith("face 1 is soft")
    # two large soft faces are named together
    d = decide_file([_track(1, [0.9], detail=2.0), _track(2, [0.1], detail=3.0)], RULE)
    assert d.warnings[0].startswith("face 1, face 2 are soft")
    # a small soft face that does not decide: passed over as too small, no soft warning
    d = decide_file([_track(1, [0.2], 120, detail=10.0), _track(2, [0.9], 40, detail=2.0)], RULE)
    assert "too small" in d.reason and d.warnings == ()
    # no detail measured: never soft
    assert decide_file([_track(1, [0.95], detail=None)], RULE).warnings == ()


def test_heavy_compression_turns_real_into_uncertain_and_warns_but_leaves_fake():
    cut = RULE.heavy_compression_qp
    real, fake = _track(1, [0.1]), _track(1, [0.95])
    d = decide_file([real], RULE, video_qp=cut + 5)
    assert d.verdict == Verdict.UNCERTAIN and "heavily compressed" in d.reason and "not enough to call it REAL" in d.reason
    assert len(d.warnings) == 1 and "heavily compressed (H.264 quantiser" in d.warnings[0]
    d = decide_file([fake], RULE, video_qp=cut + 5)  # compression hides fakes; it does not make a FAKE less likely
    assert d.verdict == Verdict.FAKE and "heavily compressed" in d.warnings[0] and "compressed" not in d.reason
    for qp in (cut - 0.5, None):  # lighter, or not measured (an image, another codec): nothing changes
        d = decide_file([real], RULE, video_qp=qp)
        assert d.verdict == Verdict.REAL and d.warnings == () and d.reason == real.reason
    assert decide_file([real], RULE, video_qp=cut).verdict == Verdict.UNCERTAIN  # the cut itself is heavy


def test_no_face_file_says_why():
    d = decide_file([], RULE)
    assert (d.verdict, d.decider) == (Verdict.NO_FACE, None) and "not a REAL" in d.reason
    d = decide_file([], RULE, frames_with_face=1, frames_analyzed=32)
    assert d.verdict == Verdict.NO_FACE and "only 1 isolated frame(s) of 32" in d.reason and "not a REAL" in d.reason


def test_frame_verdict_is_the_verdict_that_frame_alone_would_get():
    assert decide_frame(0.9, {"a": 0.9, "b": 0.9}, RULE) == Verdict.FAKE
    assert decide_frame(0.5, {"a": 0.5}, RULE) == Verdict.UNCERTAIN
    assert decide_frame(0.1, {"a": 0.1, "b": 0.1}, RULE) == Verdict.REAL
    assert decide_frame(0.8, {"a": 0.99, "b": 0.2}, RULE) == Verdict.UNCERTAIN  # members disagree
    assert decide_frame(0.75, {"a": 0.75}, replace(RULE, threshold=0.8)) == Verdict.UNCERTAIN  # band 0.7-0.9
    # a track's frames keep their own verdicts; the track's follows the aggregation
    t = _track(1, [0.95] * 5 + [0.05] * 7)
    assert [o.verdict for o in t.observations] == [Verdict.FAKE] * 5 + [Verdict.REAL] * 7
    assert t.verdict == Verdict.FAKE and t.fake_probability == pytest.approx(0.95)
    mean = _track(1, [0.95] * 5 + [0.05] * 7, rule=replace(RULE, aggregation="mean"))
    assert mean.verdict == Verdict.UNCERTAIN and mean.fake_probability == pytest.approx(0.425)


def test_band_edges_follow_the_narrowed_band():
    assert band_edges(0.5, 0.15) == pytest.approx((0.35, 0.65))
    assert band_edges(0.9, 0.15) == pytest.approx((0.85, 0.95))
    assert band_edges(0.5, 0.0) == (0.5, 0.5)


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
