"""The whole pipeline on real media: tracks, CAMs, verdict states, Report JSON."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_demo.aggregate import Verdict
from deepfake_demo.explain import cam_mass_inside
from deepfake_demo.pipeline import CAM_SIZE, Detector
from mediatools import write_video
from conftest import DATA, need_data


ROOT = Path(__file__).resolve().parents[1]


def _astronaut_variants(n: int = 8) -> list[np.ndarray]:
    """Without the shared data: n 256x256 face photos from the project's public-domain example, each
    cut at its own offset and scale, mirrored every other one and lit differently, so that their
    face boxes differ as different photos' would."""
    im = Image.open(ROOT / "examples" / "astronaut_real.jpg").convert("RGB")  # face near (224, 117)
    out = []
    for k in range(n):
        side = 150 + 8 * k  # the face fills about 60 % of the width, as in an FFHQ photo
        x0, y0 = 224 - side // 2 + (k % 3 - 1) * 8, max(0, 117 - side // 2 + (k % 2) * 6)
        crop = im.crop((x0, y0, x0 + side, y0 + side)).resize((256, 256), Image.BICUBIC)
        a = np.asarray(crop, np.float32) * (0.8 + 0.05 * k)
        a = np.clip(a, 0, 255).astype(np.uint8)
        out.append(np.ascontiguousarray(a[:, ::-1]) if k % 2 else a)
    return out


@pytest.fixture(scope="module")
def photos():
    """Eight face photos: FFHQ photos of real people from the shared data where it is present,
    else variants of the project's own example photo (the tests below need a face, not a person)."""
    ffhq = DATA / "synthetic" / "real" / "ffhq"
    if ffhq.is_dir():
        return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(ffhq.glob("*"))[:8]]
    return _astronaut_variants()


def test_video_report_has_tracks_probabilities_and_cams(detector, videos):
    v = next(p for p in videos if "youtube_634" in p.name)
    r = detector.analyze(v, frames=6)
    assert r.ok and r.kind == "video" and r.frames_analyzed == 6
    assert r.verdict in (Verdict.FAKE, Verdict.REAL, Verdict.UNCERTAIN)
    assert r.faces and 0.0 <= r.fake_probability <= 1.0
    assert set(r.models) == {"legacy_xception", "efficientnet_b0"}
    main = r.faces[0]
    assert len(main.observations) >= 5
    for o in main.observations:
        assert o.cam.shape == (CAM_SIZE, CAM_SIZE) and o.cam.dtype == np.float32
        assert o.cam.min() >= 0.0 and o.cam.max() <= 1.0 + 1e-6
        assert set(o.model_cams) == set(r.models)
        assert o.crop.shape == (CAM_SIZE, CAM_SIZE, 3)
        x1, y1, x2, y2 = o.box
        assert 0 <= x1 < x2 <= r.width and 0 <= y1 < y2 <= r.height
    assert r.warnings and "test-only" in r.warnings[0]  # the tiny weights say what they are
    d = json.loads(r.to_json())
    assert d["faces"][0]["frames"][0]["time_s"] == pytest.approx(main.observations[0].time_s, abs=1e-3)
    # the plot says what it shows: a video's probability over time, one line per face
    from deepfake_demo.render import probability_figure

    ax = probability_figure(r).axes[0]
    assert "over time" in ax.get_title() and ax.get_xlabel() == "time in video (s)"
    assert len(ax.get_lines()) == 1 + len(r.faces)  # the threshold, then one line per face
    assert list(ax.get_lines()[1].get_xdata()) == pytest.approx([o.time_s for o in main.observations])


def test_heatmaps_off_gives_same_scores_without_maps(detector, videos):
    v = next(p for p in videos if "youtube_519" in p.name)
    a = detector.analyze(v, frames=3)
    b = detector.analyze(v, frames=3, heatmaps=False)
    assert b.faces[0].observations[0].cam is None
    assert a.fake_probability == pytest.approx(b.fake_probability, abs=1e-5)


def test_two_people_two_tracks(tmp_path, detector, photos):
    frames = []
    for k in range(6):
        canvas = np.full((300, 620, 3), 40, np.uint8)
        canvas[20 + k:276 + k, 20 + 2 * k:276 + 2 * k] = photos[0]
        canvas[30:286, 330 - k:586 - k] = photos[1]
        frames.append(canvas)
    clip = write_video(tmp_path / "two.avi", frames)
    r = detector.analyze(clip, frames=6)
    assert len(r.faces) == 2
    lefts = sorted(np.mean([o.box[0] for o in t.observations]) for t in r.faces)
    assert lefts[0] < 200 < lefts[1]
    assert all(len(t.observations) == 6 for t in r.faces)
    assert r.fake_probability == pytest.approx(max(t.fake_probability for t in r.faces))


def test_small_face_is_scored_but_does_not_decide(tmp_path, detector, photos):
    """A face under DecisionSettings.decisive_face_px (a photo on the wall, a passer-by)
    is reported with its own verdict but the larger face decides the file. Here the small
    face is also soft (upscaled from 20 px): passed over as too small, it gets no soft-face warning."""
    import cv2

    small = cv2.resize(cv2.resize(photos[1], (20, 20), interpolation=cv2.INTER_AREA), (100, 100),
                       interpolation=cv2.INTER_CUBIC)
    frames = []
    for k in range(6):
        canvas = np.full((300, 620, 3), 40, np.uint8)
        canvas[20 + k:276 + k, 20 + 2 * k:276 + 2 * k] = photos[0]
        canvas[100:200, 450:550] = small
        frames.append(canvas)
    r = detector.analyze(write_video(tmp_path / "small.avi", frames), frames=6)
    assert len(r.faces) == 2
    side = {t.id: np.median([min(o.box[2] - o.box[0], o.box[3] - o.box[1]) for o in t.observations])
            for t in r.faces}
    big_id = max(side, key=side.get)
    small_id = min(side, key=side.get)
    limit = detector.decision.decisive_face_px
    assert side[small_id] < limit <= side[big_id]
    big = next(t for t in r.faces if t.id == big_id)
    little = next(t for t in r.faces if t.id == small_id)
    assert r.fake_probability == big.fake_probability
    assert f"face {big_id} of 2 decides" in r.reason
    assert f"face {small_id} (" in r.reason and "too small to decide" in r.reason
    assert np.median([o.detail for o in little.observations]) < detector.decision.soft_face_detail
    assert np.median([o.detail for o in big.observations]) > detector.decision.soft_face_detail
    assert not any("soft" in w for w in r.warnings), r.warnings

    # The rule itself, both ways on purpose: one member (no disagreement rule), the plain mean over
    # frames, and a threshold between the two faces' probabilities, so one face is FAKE and the other
    # REAL. The same member with its head negated scores every crop 1 - p, so the plain mean of each
    # face is 1 - its mean too: the other face is then the FAKE one, whatever the random weights.
    import copy

    import torch

    from deepfake_demo.training.export import save_member

    member = detector.ensemble.names.index("efficientnet_b0")
    negated = copy.deepcopy(detector.ensemble.models[member])
    with torch.no_grad():
        for param in negated.get_classifier().parameters():
            param.neg_()
    save_member(negated, detector.ensemble.cards[member].spec, tmp_path / "negated",
                warning="test-only random weights, head negated")
    path, paths_seen = r.path, set()
    for det in (detector, Detector.load(str(tmp_path / "negated"), "cpu")):
        one = dict(frames=6, models=["efficientnet_b0"], aggregation="mean")
        base = det.analyze(path, **one)
        p_big, p_small = (next(t for t in base.faces if t.id == i).fake_probability for i in (big_id, small_id))
        assert p_big != p_small
        r = det.analyze(path, **one, threshold=(p_big + p_small) / 2, uncertain_band=abs(p_big - p_small) / 4)
        big, little = (next(t for t in r.faces if t.id == i) for i in (big_id, small_id))
        assert r.fake_probability == big.fake_probability == p_big
        if p_small > p_big:  # a large REAL face and a small FAKE one: the small one keeps the REAL call open
            assert (big.verdict, little.verdict, r.verdict) == (Verdict.REAL, Verdict.FAKE, Verdict.UNCERTAIN)
            assert "not clearly real" in r.reason
            paths_seen.add("small FAKE, large REAL")
        else:  # a large FAKE face decides; the small REAL one changes nothing
            assert (big.verdict, little.verdict, r.verdict) == (Verdict.FAKE, Verdict.REAL, Verdict.FAKE)
            assert "not clearly real" not in r.reason
            paths_seen.add("large FAKE, small REAL")
    assert paths_seen == {"small FAKE, large REAL", "large FAKE, small REAL"}


def test_no_face_video_and_image(tmp_path, detector):
    rng = np.random.default_rng(1)
    clip = write_video(tmp_path / "noise.mp4", [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(5)])
    r = detector.analyze(clip, frames=5)
    assert r.verdict == Verdict.NO_FACE and r.fake_probability is None and r.ok
    assert "not a REAL" in r.reason
    r = detector.analyze(np.full((200, 200, 3), 127, np.uint8))
    assert r.verdict == Verdict.NO_FACE and r.kind == "image"
    from deepfake_demo.render import probability_figure

    ax = probability_figure(r).axes[0]  # an image's plot: bars per face and model, none here, and says so
    assert "per face" in ax.get_title() and not ax.containers  # no bar drawn
    assert any(t.get_text() == "no face found" for t in ax.texts)


def test_soft_face_is_flagged_and_a_sharp_one_is_not(detector, photos):
    """A blurred face gets a warning (and its detail in the JSON); the same face sharp does not."""
    import cv2

    from deepfake_demo.config import DECISION

    sharp = detector.analyze(photos[2])
    soft = detector.analyze(cv2.GaussianBlur(photos[2], (0, 0), 3.0))
    assert len(sharp.faces) == 1 and len(soft.faces) == 1
    d_sharp = sharp.faces[0].observations[0].detail
    d_soft = soft.faces[0].observations[0].detail
    assert d_sharp > DECISION.soft_face_detail > d_soft
    assert not any("soft" in w for w in sharp.warnings)
    assert any(w.startswith("face 1 is soft") for w in soft.warnings), soft.warnings
    assert json.loads(soft.to_json())["faces"][0]["frames"][0]["detail"] == pytest.approx(d_soft, abs=0.01)
    assert any("soft" in line for line in soft.summary().splitlines())


def test_concurrent_requests_get_their_own_results(detector, photos):
    """The app shares one cached Detector between requests."""
    from concurrent.futures import ThreadPoolExecutor

    alone = [detector.analyze(im) for im in photos[:4]]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(detector.analyze, photos[:4] * 3))
    for k, r in enumerate(together):
        ref = alone[k % 4]
        assert r.verdict == ref.verdict and r.fake_probability == pytest.approx(ref.fake_probability, abs=1e-5)
        assert np.allclose(r.faces[0].observations[0].cam, ref.faces[0].observations[0].cam, atol=1e-4)


def test_thin_image_and_tiny_video(tmp_path, detector):
    r = detector.analyze(np.full((32, 20000, 3), 120, np.uint8))
    assert r.verdict == Verdict.NO_FACE
    clip = write_video(tmp_path / "tiny.avi", [np.zeros((16, 16, 3), np.uint8)] * 4)
    r = detector.analyze(clip)
    assert r.verdict == Verdict.ERROR and "too small" in r.error and r.kind == "video"


def test_bad_input_is_an_error_report_not_an_exception(tmp_path, detector):
    p = tmp_path / "fake.mp4"
    p.write_text("hello")
    r = detector.analyze(p)
    assert r.verdict == Verdict.ERROR and not r.ok and "not a readable video" in r.error
    assert detector.analyze(tmp_path / "missing.png").verdict == Verdict.ERROR
    assert detector.analyze(np.zeros((1, 1, 3), np.uint8)).verdict == Verdict.ERROR


def test_analyze_many_decodes_ahead_and_matches_analyze(tmp_path, detector, videos, photos):
    """A batch gives, in order, the reports one-by-one analysis gives; a bad file in
    the middle is its own ERROR report and does not stop the batch."""
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    img = tmp_path / "face.png"
    Image.fromarray(photos[3]).save(img)
    sources = [videos[0], bad, img, videos[1]]
    seen = []
    batch = list(detector.analyze_many(sources, frames=4, heatmaps=False, decode_ahead=True,
                                       progress_for=lambda s: (lambda f, d, s=s: seen.append((str(s), f)))))
    assert [r.path for r in batch] == [str(s) for s in sources]
    assert batch[1].verdict == Verdict.ERROR and "not a readable video" in batch[1].error
    for s, r in zip(sources, batch):
        one = detector.analyze(s, frames=4, heatmaps=False)
        assert (r.verdict, r.kind, r.frames_analyzed) == (one.verdict, one.kind, one.frames_analyzed)
        assert r.fake_probability == pytest.approx(one.fake_probability, abs=1e-6)
    assert {p for p, f in seen if f == 1.0} == {str(videos[0]), str(img), str(videos[1])}
    assert list(detector.analyze_many([])) == [] and list(detector.analyze_many([], decode_ahead=True)) == []
    plain = list(detector.analyze_many(sources[:2], frames=4, heatmaps=False))  # CPU default: no thread
    assert [r.verdict for r in plain] == [r.verdict for r in batch[:2]]


def test_array_and_path_agree_and_model_subset(tmp_path, detector, photos):
    p = tmp_path / "face.png"
    Image.fromarray(photos[2]).save(p)
    a = detector.analyze(p)
    b = detector.analyze(photos[2])
    assert a.fake_probability == pytest.approx(b.fake_probability, abs=1e-6)
    one = detector.analyze(photos[2], models=["efficientnet_b0"])
    assert set(one.models) == {"efficientnet_b0"}
    assert one.fake_probability == pytest.approx(a.faces[0].models["efficientnet_b0"], abs=1e-6)
    assert detector.analyze(photos[2], models=["nope"]).verdict == Verdict.ERROR


def test_cam_lies_on_the_evidence(tmp_path, photos):
    """Train a tiny timm model (resnet10t) to spot a checkerboard patch planted
    on the face; the pipeline's Grad-CAM must then light up the face and the
    patch far above their share of the crop. Weights are test-only."""
    import timm
    import torch

    from deepfake_demo.config import MODEL_SPECS
    from deepfake_demo.faces import crop_face, detect_faces, load_face_detector
    from deepfake_demo.training.export import save_member

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    mt = load_face_detector()
    boxes = [detect_faces(mt, im)[0].box for im in photos]
    size = 128
    spec = replace(MODEL_SPECS["efficientnet_b0"], arch="resnet10t", input_size=size)

    def plant(im, box, r):
        im = im.copy()
        x1, y1, x2, y2 = (int(v) for v in box)
        s = max(8, (x2 - x1) // 4)
        x, y = int(r.integers(x1, x2 - s)), int(r.integers(y1, y2 - s))
        yy, xx = np.mgrid[0:s, 0:s]
        im[y:y + s, x:x + s] = ((yy // 2 + xx // 2) % 2 * 255).astype(np.uint8)[..., None]
        return im, (x, y, x + s, y + s)

    model = timm.create_model("resnet10t", pretrained=False, num_classes=1)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    for _ in range(160):  # two framings to learn: 100 steps left one planted face at 0.67
        xs, ys = [], []
        for _ in range(16):
            k, label = int(rng.integers(len(photos))), int(rng.integers(2))
            im = plant(photos[k], boxes[k], rng)[0] if label else photos[k]
            xs.append(crop_face(im, boxes[k], float(rng.choice([0.3, 0.6])), size))  # both members' framings
            ys.append(label)
        x = (torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255 - mean) / std
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).view(-1), torch.tensor(ys).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    # Two members, the second cropping wider: their maps must be warped onto one face square.
    save_member(model, spec, tmp_path / "w", warning="test-only: trained to find a planted patch")
    save_member(model, replace(spec, crop_margin=0.6), tmp_path / "w", name="resnet10t_wide",
                warning="test-only: trained to find a planted patch")
    det = Detector.load(str(tmp_path / "w"))
    assert det.model_names == ["resnet10t", "resnet10t_wide"]
    for k in range(3):
        im, patch = plant(photos[k], boxes[k], np.random.default_rng(100 + k))
        r = det.analyze(im)
        clean = det.analyze(photos[k])
        assert r.fake_probability > 0.8 and clean.fake_probability < 0.5
        o = r.faces[0].observations[0]
        side = o.crop_box[2] - o.crop_box[0]
        face_share = (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) / side**2
        patch_share = (patch[2] - patch[0]) ** 2 / side**2
        assert cam_mass_inside(o.cam, o.box, o.crop_box) > face_share + 0.15
        assert cam_mass_inside(o.cam, patch, o.crop_box) > 2.5 * patch_share
        for name, member_cam in o.model_cams.items():
            assert cam_mass_inside(member_cam, patch, o.crop_box) > 2.5 * patch_share, name


def test_cudnn_switch_touches_only_cuda_runs_and_restores():
    """The GPU analysis turns cuDNN off for its duration (new shapes per upload
    cost more with it) and puts the user's setting back, even after an error;
    a CPU analysis leaves it alone."""
    import torch

    from deepfake_demo.pipeline import _cudnn_off_on_gpu

    before = torch.backends.cudnn.enabled
    with _cudnn_off_on_gpu("cpu"):
        assert torch.backends.cudnn.enabled == before
    with _cudnn_off_on_gpu("cuda:0"):
        assert torch.backends.cudnn.enabled is False
    assert torch.backends.cudnn.enabled == before
    try:
        with _cudnn_off_on_gpu("cuda"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert torch.backends.cudnn.enabled == before


def test_cudnn_switch_is_restored_after_overlapping_analyses():
    """Two analyses that overlap (A starts, B starts, A ends, B ends) keep cuDNN
    off until both are done and then give the caller back its own setting."""
    import threading

    import torch

    from deepfake_demo.pipeline import _cudnn_off_on_gpu

    before = torch.backends.cudnn.enabled
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def a():
        with _cudnn_off_on_gpu("cuda"):
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with _cudnn_off_on_gpu("cuda"):
            b_in.set()
            a_out.wait(5)
            seen["during_b_after_a"] = torch.backends.cudnn.enabled

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start(); tb.start(); ta.join(10); tb.join(10)
    assert seen["during_b_after_a"] is False
    assert torch.backends.cudnn.enabled == before


# --- without ../shared/data: the project's own example photo (public domain) and tiny test-only weights

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "astronaut_real.jpg"


@pytest.fixture(scope="module")
def astronaut():
    if not EXAMPLE.is_file():
        pytest.skip(f"{EXAMPLE} missing (examples/make_examples.py makes it)")
    return np.asarray(Image.open(EXAMPLE).convert("RGB"))


def _contract(r) -> dict:
    d = r.to_dict()
    d.pop("seconds"), d.pop("timings_s")
    return d


def test_options_dataclass_and_keywords_agree(detector, astronaut):
    from deepfake_demo import AnalysisOptions

    opts = AnalysisOptions(heatmaps=False, aggregation="mean", models=["efficientnet_b0"], threshold=0.4)
    assert opts.models == ("efficientnet_b0",) and hash(opts) == hash(replace(opts))
    assert AnalysisOptions(models="efficientnet_b0").models == ("efficientnet_b0",)  # one name, not its letters
    a = detector.analyze(astronaut, options=opts)
    b = detector.analyze(astronaut, heatmaps=False, aggregation="mean", models=["efficientnet_b0"], threshold=0.4)
    assert a.ok and a.faces and _contract(a) == _contract(b)
    assert (a.threshold, a.aggregation, list(a.models)) == (0.4, "mean", ["efficientnet_b0"])
    assert a.faces[0].observations[0].cam is None  # heatmaps=False reached the run
    assert detector.analyze(astronaut, options=opts, threshold=0.6).threshold == 0.6  # a keyword wins
    many = list(detector.analyze_many([astronaut, astronaut], options=opts))
    assert [_contract(r) for r in many] == [_contract(a)] * 2
    bad = detector.analyze(astronaut, options=AnalysisOptions(aggregation="vote"))
    assert bad.verdict == Verdict.ERROR and "unknown aggregation" in bad.error
    assert detector.analyze(astronaut, options=AnalysisOptions(threshold=1.5)).verdict == Verdict.ERROR


def test_default_threshold_comes_from_the_cards(tmp_path, tiny_weights, astronaut):
    """The threshold used when none is given: the ensemble card's for all its members,
    a member's own card alone; the Report says which it used."""
    import shutil

    for p in tiny_weights.iterdir():
        shutil.copy(p, tmp_path / p.name)
    cards = sorted(tmp_path.glob("*.json"))
    for p, t in zip(cards, (0.3, 0.4)):
        card = json.loads(p.read_text())
        card["threshold"] = t
        p.write_text(json.dumps(card))
    names = sorted(json.loads(p.read_text())["name"] for p in cards)
    (tmp_path / "ensemble.json").write_text(json.dumps(
        {"members": names, "temperature": 1.0, "threshold": 0.42,
         "member_sha256": {json.loads(p.read_text())["name"]: json.loads(p.read_text())["sha256"] for p in cards}}))
    det = Detector.load(str(tmp_path))
    assert det.default_threshold() == det.default_threshold(names) == pytest.approx(0.42)
    assert det.default_threshold([names[0]]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="none of the selected models"):
        det.default_threshold(["nope"])
    assert det.analyze(astronaut, heatmaps=False).threshold == pytest.approx(0.42)
    assert det.analyze(astronaut, heatmaps=False, models=[names[1]]).threshold == pytest.approx(0.4)


def test_observations_carry_their_verdict(detector, astronaut):
    """Each analysed frame of a face has the verdict that frame alone gets (what render draws
    its box in), and the JSON carries it."""
    from deepfake_demo.aggregate import decide

    p = detector.analyze(astronaut, heatmaps=False).faces[0].fake_probability
    for thr, expect in ((max(0.02, p - 0.2), Verdict.FAKE), (min(0.98, p + 0.2), Verdict.REAL)):
        r = detector.analyze(astronaut, heatmaps=False, models=["efficientnet_b0"], threshold=thr,
                             uncertain_band=0.05)
        o = r.faces[0].observations[0]
        assert o.verdict == expect == decide(o.fake_probability, r.threshold, r.uncertain_band)[0]
        assert json.loads(r.to_json())["faces"][0]["frames"][0]["verdict"] == expect


def test_internal_error_is_an_error_report_and_logged_with_its_traceback(detector, astronaut, monkeypatch,
                                                                          caplog):
    import deepfake_demo.pipeline as pipeline

    def broken(*_a, **_k):
        raise RuntimeError("boom in tracking")

    monkeypatch.setattr(pipeline, "link_tracks", broken)
    with caplog.at_level("ERROR", logger="deepfake_demo.pipeline"):
        r = detector.analyze(astronaut)
    assert r.verdict == Verdict.ERROR and "internal error" in r.error and "boom in tracking" in r.error
    assert r.kind == "image"
    rec = [x for x in caplog.records if x.name == "deepfake_demo.pipeline" and x.levelname == "ERROR"]
    assert rec and rec[0].exc_info and "boom in tracking" in str(rec[0].exc_info[1])
