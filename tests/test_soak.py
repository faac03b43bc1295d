"""The soak harness (deepfake_demo.soak): how it judges answers, its memory reading, and a short
real run of the app under two concurrent gradio_client users with tiny test weights."""
from __future__ import annotations

import os

import pytest

pytest.importorskip("gradio_client")

from deepfake_demo.soak import _expect, rss_mb, soak  # noqa: E402


def test_answers_are_judged_by_what_each_request_should_get():
    assert _expect("image_real", "UNCERTAIN", None) == "ok"
    assert _expect("image_real", "ERROR", None) == "failed"  # a real photo must be analysed
    assert _expect("not_media", "ERROR", None) == "ok"  # refused by the library with a reason
    assert _expect("not_media", "REAL", None) == "failed"  # a verdict on a text file
    assert _expect("video_too_long", "FAKE", None) == "failed"  # over the app's limit: must not be analysed
    assert _expect("video_too_long", None, "AppError: This video is too long for this app: 4 s") == "refused"
    assert _expect("video", None, "AppError: Queue is full.") == "refused"
    assert _expect("video", None, "TimeoutError: ") == "failed"
    assert _expect("image_blended", None, "AppError: Internal error while analysing") == "failed"


def test_rss_counts_this_process():
    assert 10 < rss_mb(os.getpid()) < 50_000
    assert rss_mb(2 ** 22 + 12345) == 0.0  # no such process


def test_short_soak_of_the_app_serves_every_request(tiny_weights, tmp_path):
    s = soak(str(tiny_weights), users=2, minutes=0.4, out=tmp_path, frames=2, request_timeout_s=120)
    assert s["app_alive_at_end"] and s["requests"] >= 2
    assert s["failed"] == 0, s["failures"]
    assert s["ok"] + s["refused"] == s["requests"]
    assert s["rss_mb"]["max"] > 100 and len(s["rss_samples"]) >= 2
    assert (tmp_path / "soak.json").is_file()
