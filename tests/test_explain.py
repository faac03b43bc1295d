"""CAM geometry and overlays: pure functions."""
from __future__ import annotations

import numpy as np
import pytest

from deepfake_demo.explain import cam_mass_inside, combine_cams, overlay_crop, overlay_frame, warp_cam


def test_warp_cam_identity_and_shift():
    cam = np.zeros((10, 10), np.float32)
    cam[2:5, 6:9] = 1.0
    same = warp_cam(cam, (100, 100, 200, 200), (100, 100, 200, 200), 10)
    assert np.allclose(same, cam, atol=1e-5)
    # destination is the left half of the source square, at twice the resolution: the blob (x 60-90 %) leaves it
    left = warp_cam(cam, (0, 0, 100, 100), (0, 0, 50, 50), 10)
    assert left.max() < 1e-6
    right = warp_cam(cam, (0, 0, 100, 100), (50, 0, 100, 50), 10)
    ys, xs = np.nonzero(right > 0.5)
    assert 4 <= ys.min() and ys.max() <= 9 and 2 <= xs.min() and xs.max() <= 8
    # outside the source square the map is 0
    wide = warp_cam(np.ones((10, 10), np.float32), (50, 50, 150, 150), (0, 0, 200, 200), 20)
    assert wide[0, 0] == 0 and wide[10, 10] == pytest.approx(1.0)


def test_combine_cams_normalised():
    a = np.zeros((4, 4), np.float32)
    a[0, 0] = 2.0
    b = np.zeros((4, 4), np.float32)
    b[3, 3] = 1.0
    c = combine_cams([a, b])
    assert c.max() == pytest.approx(1.0) and c[0, 0] == pytest.approx(1.0) and c[3, 3] == pytest.approx(0.5)
    assert combine_cams([np.zeros((4, 4))]).max() == 0
    w = combine_cams([a, b], weights=[0.0, 1.0])  # a member with no fake evidence adds nothing
    assert w[0, 0] == 0 and w[3, 3] == pytest.approx(1.0)


def test_overlays_shape_and_locality():
    crop = np.full((32, 32, 3), 128, np.uint8)
    cam = np.zeros((32, 32), np.float32)
    cam[:16] = 1.0
    over = overlay_crop(crop, cam, opacity=0.6)
    assert over.shape == crop.shape and over.dtype == np.uint8
    assert not np.array_equal(over[:16], crop[:16])

    frame = np.full((100, 200, 3), 90, np.uint8)
    out = overlay_frame(frame, [(cam, (150, 50, 182, 82))], opacity=0.5)
    assert out.shape == frame.shape
    assert np.array_equal(out[:, :150], frame[:, :150])  # untouched outside the face square
    assert np.array_equal(out[66:82, 150:182], frame[66:82, 150:182])  # cold half untouched
    assert not np.array_equal(out[50:66, 150:182], frame[50:66, 150:182])  # hot half coloured
    # a square partly outside the frame is clipped, not an error
    assert overlay_frame(frame, [(cam, (190, 90, 222, 122))]).shape == frame.shape


def test_cam_mass_inside():
    cam = np.zeros((10, 10), np.float32)
    cam[2:8, 2:8] = 1
    assert cam_mass_inside(cam, (2, 2, 8, 8), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert cam_mass_inside(cam, (0, 0, 5, 10), (0, 0, 10, 10)) == pytest.approx(0.5)


def test_overlay_frame_overlapping_faces_take_the_hotter_map():
    """Two face squares that overlap: each pixel is blended with the larger of
    the two maps there, pixels outside both are untouched, the input is not modified."""
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    before = frame.copy()
    a = np.full((20, 20), 0.2, np.float32)
    b = np.full((20, 20), 0.9, np.float32)
    out = overlay_frame(frame, [(a, (10, 10, 70, 70)), (b, (40, 40, 100, 100))], opacity=1.0)
    assert np.array_equal(frame, before)
    only_a = overlay_frame(frame, [(a, (10, 10, 70, 70))], opacity=1.0)
    only_b = overlay_frame(frame, [(b, (40, 40, 100, 100))], opacity=1.0)
    assert np.array_equal(out[45:65, 45:65], only_b[45:65, 45:65])  # overlap: the hotter map wins
    assert np.array_equal(out[12:38, 12:38], only_a[12:38, 12:38])  # a alone
    assert np.array_equal(out[75:98, 75:98], only_b[75:98, 75:98])  # b alone
    assert np.array_equal(out[:, 100:], frame[:, 100:]) and np.array_equal(out[:10], frame[:10])
    assert not np.array_equal(out[12:38, 12:38], frame[12:38, 12:38])
