"""Face detection, the crop function and tracking, on the shared videos."""
from __future__ import annotations

import numpy as np
import pytest

from deepfake_demo.faces import (FaceBox, box_iou, crop_face, detect_faces, link_tracks, load_face_detector,
                                 square_box)
from deepfake_demo.media import load_image, load_video
from conftest import need_data


@pytest.fixture(scope="module")
def mtcnn():
    return load_face_detector("cpu")


def test_square_box_and_crop_geometry():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 90:110] = 255  # a white square "face"
    assert square_box((90, 40, 110, 60), 0.0) == (90, 40, 110, 60)
    assert square_box((90, 40, 110, 60), 0.5) == (85, 35, 115, 65)
    crop = crop_face(img, (90, 40, 110, 60), 0.0, 32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8 and crop.mean() > 250
    # a face at the border: the square goes past the frame, the crop keeps its framing and size
    img2 = np.zeros((100, 200, 3), np.uint8)
    img2[0:20, 0:20] = 200  # a bright face in the top-left corner
    edge = crop_face(img2, (0, 0, 20, 20), 1.0, 40)  # square (-10, -10, 30, 30): 10 px outside on two sides
    assert edge.shape == (40, 40, 3)
    assert edge[20, 20, 0] == 200 and edge[35, 35, 0] == 0  # the face sits where the square says
    assert edge[5, 5, 0] == 200 and edge[5, 35, 0] == 0  # outside the frame: the edge mirrored, not black


def test_faces_found_in_a_shared_photo(mtcnn):
    p = sorted(need_data("synthetic", "real", "ffhq").glob("*"))[0]
    frame = load_image(p).frames[0]
    faces = detect_faces(mtcnn, frame.image)
    assert len(faces) >= 1
    f = faces[0]
    h, w = frame.image.shape[:2]
    x1, y1, x2, y2 = f.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and f.size > 0.3 * min(h, w)
    assert len(f.landmarks) == 5
    (lx, ly), (rx, ry) = f.landmarks[0], f.landmarks[1]
    assert lx < rx and abs(ly - ry) < 0.2 * f.size  # eyes level: the face is upright


def test_no_face_in_noise(mtcnn):
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert detect_faces(mtcnn, noise) == []


def test_every_shared_video_has_a_tracked_face(mtcnn, videos):
    for v in videos:
        m = load_video(v, 8)
        per_frame = [detect_faces(mtcnn, f.image, f.index) for f in m.frames]
        tracks = link_tracks(per_frame)
        assert tracks, f"no face track in {v.name}"
        main = max(tracks, key=len)
        assert len(main) >= 4, f"{v.name}: main face seen in only {len(main)}/8 frames"
        idx = [fb.frame_index for fb in main]
        assert idx == sorted(idx) and len(set(idx)) == len(idx)  # one box per frame per track


def _fb(i, x, y, s=50):
    return FaceBox(i, (x, y, x + s, y + s), 0.99)


def test_two_people_make_two_tracks_even_when_one_is_missed():
    frames = [[_fb(0, 10, 10), _fb(0, 300, 20)], [_fb(1, 300, 25), _fb(1, 14, 12)], [_fb(2, 18, 14)],
              [_fb(3, 20, 15), _fb(3, 310, 30)]]
    tracks = link_tracks(frames)
    assert len(tracks) == 2
    left, right = tracks
    assert [f.frame_index for f in left] == [0, 1, 2, 3] and all(f.box[0] < 100 for f in left)
    assert [f.frame_index for f in right] == [0, 1, 3] and all(f.box[0] > 200 for f in right)


def test_spurious_single_detection_is_dropped():
    frames = [[_fb(i, 10 + i, 10)] for i in range(20)]
    frames[7].append(_fb(7, 400, 300, 45))
    assert len(link_tracks(frames)) == 1


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0


def test_keyframes_and_regions_find_the_same_people(mtcnn, videos):
    """Full passes on every 4th sampled frame and MTCNN only around the known
    faces in between: the same people, boxes in the same place, on a two-person
    DFDC clip and a FaceForensics++ clip."""
    from dataclasses import replace

    from deepfake_demo.config import DETECTOR
    from deepfake_demo.faces import detect_frames

    for name in ("dfdc_yhffcuhhjy.mp4", "ffpp_c23_youtube_634.mp4"):
        v = next(p for p in videos if p.name == name)
        frames = [(f.index, f.image) for f in load_video(v, 16).frames]
        full = detect_frames(mtcnn, frames, replace(DETECTOR, keyframe_every=1))
        fast = detect_frames(mtcnn, frames, DETECTOR)
        assert len(link_tracks(fast)) == len(link_tracks(full)), name
        big = [f for faces in full for f in faces if f.size >= 80]  # the people, not borderline background faces
        for f in big:
            same = [g for g in fast[[fr[0] for fr in frames].index(f.frame_index)]]
            assert max((box_iou(f.box, g.box) for g in same), default=0) > 0.75, (name, f.frame_index)


class _LabelledGpu:
    """The CPU MTCNN, labelled as on a GPU, to reach detect_frames' GPU branch on a CPU."""

    device = "cuda:0"

    def __init__(self, mtcnn):
        self.mtcnn, self.shapes = mtcnn, []

    def detect(self, x, landmarks=False):
        self.shapes.append(np.shape(x))
        return self.mtcnn.detect(x, landmarks=landmarks)


def test_batched_full_passes_match_one_frame_at_a_time(mtcnn, videos):
    """The GPU path (every frame a full pass, frames of one size batched into one
    MTCNN call) finds the faces a one-frame-at-a-time full pass finds, in the
    same place; run here on the CPU, where the same code runs the same networks."""
    import cv2
    from dataclasses import replace

    from deepfake_demo.config import DETECTOR
    from deepfake_demo.faces import detect_faces_batch, detect_frames

    v = next(p for p in videos if p.name == "dfdc_yhffcuhhjy.mp4")  # two people, one small
    frames = [(f.index, f.image) for f in load_video(v, 6).frames]
    # a frame of another size joins the video's (its own batch), as does one too small to search
    h, w = frames[0][1].shape[:2]
    frames.insert(2, (999, cv2.resize(frames[0][1], (w // 2, h // 2), interpolation=cv2.INTER_AREA)))
    frames.append((1000, np.zeros((12, 12, 3), np.uint8)))
    one_by_one = detect_frames(mtcnn, frames, replace(DETECTOR, keyframe_every=1))
    gpu = _LabelledGpu(mtcnn)
    calls: list[tuple[int, int]] = []
    batched = detect_frames(gpu, frames, replace(DETECTOR, gpu_batch=4), progress=lambda k, n: calls.append((k, n)))
    # 6 video frames: a batch of 4, then 2; the half-size frame alone; the tiny frame never searched
    assert sorted(s[0] for s in gpu.shapes) == [1, 2, 4] and all(len(s) == 4 for s in gpu.shapes)
    assert [n for _, n in calls] == [len(frames)] * 3 and [k for k, _ in calls] == sorted(k for k, _ in calls)
    assert sum(map(len, one_by_one)) >= 6 and batched[-1] == [] and len(batched[2]) >= 1
    for a, b in zip(one_by_one, batched):
        assert len(a) == len(b)
        for f in a:
            assert max(box_iou(f.box, g.box) for g in b) > 0.95
    assert detect_faces_batch(mtcnn, []) == []
