"""The weights shipped in weights/: intact, described, and better than chance on
real held-out crops (faces/test, never used for any choice in training)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deepfake_demo.models import DEFAULT_WEIGHTS_DIR, read_cards, sha256_file

from conftest import need_data

CARDS = sorted(p for p in DEFAULT_WEIGHTS_DIR.glob("*.json") if "arch" in json.loads(p.read_text()))


@pytest.fixture(scope="module")
def shipped():
    if not CARDS:
        pytest.skip("no weights shipped in weights/")
    from deepfake_demo.models import load_ensemble

    return load_ensemble(DEFAULT_WEIGHTS_DIR, "cpu")


def test_cards_describe_the_weights():
    if not CARDS:
        pytest.skip("no weights shipped in weights/")
    cards = read_cards(DEFAULT_WEIGHTS_DIR)
    archs = {c.spec.arch for c in cards}
    assert any("xception" in a for a in archs) and any("efficientnet" in a for a in archs)
    total_mb = 0.0
    for c in cards:
        assert c.sha256 == sha256_file(c.weights_path)
        assert c.spec.temperature > 0 and 0 < c.spec.threshold < 1
        assert "warning" not in c.info  # real weights, not test-only
        for key in ("training_data", "license", "limits", "validation", "reproduce", "test_metrics"):
            assert c.info.get(key), f"{c.name}: card lacks {key}"
        total_mb += c.weights_path.stat().st_size / 2**20
    assert total_mb < 100


def test_shipped_ensemble_separates_held_out_crops(shipped):
    """A sample of faces/test crops, cut by the inference crop function: real
    faces must score lower than fake ones far more often than chance."""
    from PIL import Image

    from deepfake_demo.faces import crop_face, detect_faces, load_face_detector
    from deepfake_demo.training.metrics import roc_auc

    root = need_data("faces", "test")
    files = sorted((root / "real" / "ffpp").glob("*.jpg"))[::5] + sorted((root / "fake").glob("*/*.jpg"))[::10]
    mt = load_face_detector()
    images, boxes, labels = [], [], []
    for p in files:
        im = np.asarray(Image.open(p).convert("RGB"))
        faces = detect_faces(mt, im)
        if faces:
            images.append(im)
            boxes.append(max(faces, key=lambda f: f.size).box)
            labels.append(0 if p.parent.name == "ffpp" else 1)
    assert len(images) > 0.9 * len(files)
    probs = {}
    for card in shipped.cards:
        sp = card.spec
        crops = np.stack([crop_face(im, b, sp.crop_margin, sp.input_size, sp.interpolation)
                          for im, b in zip(images, boxes)])
        probs[card.name] = shipped.score_member(card.name, crops, with_cam=False).probs
    from deepfake_demo.aggregate import ensemble_probability

    ens = ensemble_probability(probs)
    assert roc_auc(np.array(labels), ens) > 0.6, {k: roc_auc(np.array(labels), v) for k, v in probs.items()}


def test_a_fake_called_on_a_blurred_face_says_the_face_is_soft(shipped):
    """A frame of a FaceForensics++ Deepfakes video: sharp, the shipped pair calls it FAKE with no caveat;
    blurred (Gaussian sigma 2), it still leans FAKE, and both the face's reason and the report's warnings
    say the face is soft and that blur alone pushes these models towards FAKE."""
    import cv2

    from deepfake_demo.faces import load_face_detector
    from deepfake_demo.pipeline import Detector

    video = need_data("videos", "fake", "ffpp_c23_Deepfakes_519_515.mp4")
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 40)
    ok, bgr = cap.read()
    cap.release()
    assert ok
    frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    det = Detector(shipped, load_face_detector("cpu"))
    sharp, soft = det.analyze(frame), det.analyze(cv2.GaussianBlur(frame, (0, 0), 2.0))
    assert sharp.verdict == "FAKE" and "soft" not in sharp.reason and not sharp.warnings
    assert soft.verdict == "FAKE", soft.reason  # the case the caveat is for
    assert "the face is soft" in soft.reason and any("soft" in w for w in soft.warnings)


def test_bf16_backbone_on_the_cpu_gives_the_fp32_probabilities(shipped, monkeypatch):
    """Members whose spec says cpu_bf16 run their backbone under bf16 autocast where the CPU has it
    natively: each face's calibrated probability must stay within 0.02 of fp32's (the project's own
    photos, cropped as inference does), so the verdict a user gets does not hinge on the CPU."""
    from PIL import Image

    from conftest import ROOT
    from deepfake_demo import models
    from deepfake_demo.faces import crop_face, detect_faces, load_face_detector

    if not models.cpu_has_bf16():
        pytest.skip("this CPU has no native bf16 (AMX / AVX512-BF16): members run in fp32")
    members = [c for c in shipped.cards if c.spec.cpu_bf16]
    if not members:
        pytest.skip("no shipped member runs in bf16 on the CPU")
    mtcnn = load_face_detector("cpu")
    crops = []
    for name in ("astronaut_real.jpg", "astronaut_blended_a.jpg", "astronaut_blended_b.jpg"):
        rgb = np.asarray(Image.open(ROOT / "examples" / name).convert("RGB"))
        box = max(detect_faces(mtcnn, rgb), key=lambda f: f.size).box
        sp = members[0].spec
        crops.append(crop_face(rgb, box, sp.crop_margin, sp.input_size, sp.interpolation))
    crops = np.stack(crops)
    for card in members:
        with_bf16 = shipped.score_member(card.name, crops, with_cam=False).probs
        monkeypatch.setenv("DEEPFAKE_DEMO_FP32", "1")
        assert not models.cpu_has_bf16()
        fp32 = shipped.score_member(card.name, crops, with_cam=False).probs
        monkeypatch.delenv("DEEPFAKE_DEMO_FP32")
        assert not np.array_equal(with_bf16, fp32)  # the bf16 path really ran
        assert np.abs(with_bf16 - fp32).max() < 0.02, (with_bf16, fp32)
