"""The benchmark command runs and prints its JSON contract (figures are not asserted)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_json_rows(tiny_weights, data_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "deepfake_demo.bench", "--json", "--runs", "1", "--frames", "2",
                          "--weights", str(tiny_weights), "--data", str(data_dir)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["case"] for r in rows] == ["image_1080p", "video_1080p", "video_720p"]
    for r in rows:
        assert {"case", "device", "frames", "end_to_end_s", "floor_s", "ratio", "peak_mem_mb", "stages_s"} <= set(r)
        assert r["end_to_end_s"] > 0 and r["floor_s"] > 0 and r["faces"] >= 1
        assert {"decode", "detect", "render"} <= set(r["stages_s"])
        assert {"decode", "detect", "forward"} == set(r["floor_stages_s"]) and r["floor_detect_scheme"]
    assert rows[1]["frames"] == 2 and rows[0]["frames"] == 1


def test_bench_batch_row(tiny_weights, data_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "deepfake_demo.bench", "--json", "--batch", "--batch-limit", "3",
                          "--frames", "2", "--weights", str(tiny_weights), "--data", str(data_dir)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    (row,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert row["case"] == "batch_3_videos" and row["videos"] == 3 and row["frames"] == 2
    assert row["same_reports"] is True  # decoding ahead changes nothing in the reports
    assert row["videos_per_s"] > 0 and row["sequential_s"] > 0


def test_bench_app_row_times_the_app_against_the_library(tiny_weights, data_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "deepfake_demo.bench", "--json", "--app", "--runs", "1", "--frames", "2",
                          "--cases", "video_720p", "image_1080p", "--weights", str(tiny_weights), "--data", str(data_dir)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    (row,) = [json.loads(line) for line in out.stdout.splitlines()]  # image cases are not app-timed
    assert row["case"] == "video_720p" and row["frames"] == 2 and row["target_ratio"] == 1.15
    assert row["drawings_s"] > 0, "the page's second step (drawings) is timed beside the answer"
    assert row["library_s"] > 0 and row["app_s"] > 0 and len(row["app_runs_s"]) == 1
    assert abs(row["ratio"] - row["app_s"] / row["library_s"]) < 0.01
    # the app's time splits into its own analysis (the report's seconds) and the rest of the call
    assert 0 < row["app_analysis_s"] < row["app_s"]
    assert row["app_overhead_s"] == pytest.approx(row["app_s"] - row["app_analysis_s"], abs=0.01)
