"""Media loading on real files: formats, orientation, sampling, limits."""
from __future__ import annotations

import io

import cv2
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_demo.config import DECISION
from deepfake_demo.media import (MediaError, _rotation, load_image, load_media, load_video, sample_indices, to_rgb_uint8,
                                 video_qp)
from mediatools import huge_png, reencode_h264, set_mp4_rotation, write_video
from conftest import need_data


@pytest.fixture(scope="module")
def face_photo():
    """A photo of a face the project made itself (examples/, from scikit-image's public-domain
    astronaut): these tests need some face photo, not the shared research data."""
    p = Path(__file__).resolve().parent.parent / "examples" / "astronaut_real.jpg"
    return np.asarray(Image.open(p).convert("RGB"))


def test_sample_indices_even_and_unique():
    idx = sample_indices(300, 32)
    assert len(idx) == 32 and idx == sorted(set(idx))
    assert idx[0] > 0 and idx[-1] < 299
    gaps = np.diff(idx)
    assert gaps.max() - gaps.min() <= 1
    assert sample_indices(5, 32) == [0, 1, 2, 3, 4]
    assert sample_indices(0, 8) == []


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp")])
def test_image_formats(tmp_path, face_photo, fmt, ext):
    p = tmp_path / f"face.{ext}"
    Image.fromarray(face_photo).save(p, fmt)
    m = load_image(p)
    assert m.kind == "image" and m.frames[0].image.dtype == np.uint8
    assert m.frames[0].image.shape == face_photo.shape
    assert np.abs(m.frames[0].image.astype(int) - face_photo).mean() < 6  # lossy formats stay close


def test_grayscale_rgba_and_16bit(tmp_path, face_photo):
    gray = Image.fromarray(face_photo).convert("L")
    gray.save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png").frames[0].image
    assert g.shape == face_photo.shape and (g[..., 0] == g[..., 1]).all()

    rgba = np.dstack([face_photo, np.zeros(face_photo.shape[:2], np.uint8)])  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert (load_image(tmp_path / "a.png").frames[0].image == 255).all()  # composited over white

    sixteen = (np.asarray(gray, np.uint16) * 257)
    Image.fromarray(sixteen).save(tmp_path / "s.png")
    s = load_image(tmp_path / "s.png").frames[0].image
    assert np.abs(s[..., 0].astype(int) - np.asarray(gray)).max() <= 1


def test_exif_orientation(tmp_path, face_photo):
    img = Image.fromarray(face_photo[:, : face_photo.shape[1] // 2])  # make it non-square: h > w
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers rotate 90 degrees clockwise
    sideways = img.transpose(Image.Transpose.ROTATE_90)
    sideways.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "o.jpg").frames[0].image
    assert out.shape[:2] == (img.height, img.width)
    assert np.abs(out.astype(int) - np.asarray(img)).mean() < 8


def test_array_input_normalised():
    a = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    rgb = to_rgb_uint8(a)
    assert rgb.shape == (64, 48, 3) and rgb.dtype == np.uint8
    m = load_media(np.zeros((40, 40, 4), np.uint8))
    assert m.frames[0].image.shape == (40, 40, 3)


def test_video_sampling_without_seeking(videos):
    v = next(p for p in videos if "youtube_634" in p.name)
    m = load_video(v, 8)
    assert m.kind == "video" and len(m.frames) == 8
    assert (m.width, m.height) == (1280, 720)
    assert [f.index for f in m.frames] == sample_indices(m.frame_count, 8)
    assert all(abs(f.time_s - f.index / m.fps) < 1e-6 for f in m.frames)
    # the sampled frame is the frame at that index (compare against a sequential read)
    cap = cv2.VideoCapture(str(v))
    for _ in range(m.frames[1].index + 1):
        ok, bgr = cap.read()
    cap.release()
    assert np.array_equal(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), m.frames[1].image)


def test_portrait_clips_stay_portrait(videos):
    for v in videos:
        if v.name in ("dfdc_brtujopkby.mp4", "dfdc_yhffcuhhjy.mp4"):
            m = load_video(v, 2)
            assert m.height > m.width, v.name


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_honoured(tmp_path, videos, degrees):
    """A phone-style clip: frames stored turned, the display matrix says how to turn them back."""
    src = next(p for p in videos if p.name == "dfdc_brtujopkby.mp4")  # portrait, upright
    upright = [cv2.resize(f.image, (270, 480), interpolation=cv2.INTER_AREA) for f in load_video(src, 6).frames]
    stored = [np.ascontiguousarray(np.rot90(f, k=degrees // 90)) for f in upright]  # counter-clockwise
    clip = write_video(tmp_path / "phone.mp4", stored)
    assert set_mp4_rotation(clip, degrees) == 1
    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    try:
        assert _rotation(cap) == degrees  # the display matrix is read as written
    finally:
        cap.release()
    m = load_video(clip, 6)
    assert (m.width, m.height) == (270, 480)
    diff = np.mean([np.abs(a.image.astype(int) - b.astype(int)).mean() for a, b in zip(m.frames, upright)])
    assert diff < 12, f"frames not upright (mean abs diff {diff:.1f})"


@pytest.mark.parametrize("mode", ["CMYK", "P", "PA", "LA", "I;16", "I", "F", "1"])
def test_odd_image_modes(tmp_path, face_photo, mode):
    img = Image.fromarray(face_photo)
    if mode == "PA":
        img = img.convert("RGBA").convert("P")
        img.info["transparency"] = 0
        fmt, name = "PNG", "p.png"
    else:
        img = img.convert("L").convert(mode) if mode in ("I;16", "I", "F", "1") else img.convert(mode)
        fmt, name = ("TIFF", "x.tif") if mode in ("CMYK", "F", "I") else ("PNG", "x.png")
    img.save(tmp_path / name, fmt, **({"transparency": 0} if mode == "PA" else {}))
    out = load_image(tmp_path / name).frames[0].image
    assert out.shape == face_photo.shape and out.dtype == np.uint8
    assert out.std() > 10  # still a picture, not a flat field


def test_animated_gif_first_frame(tmp_path, face_photo):
    frames = [Image.fromarray(face_photo), Image.fromarray(255 - face_photo)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    out = load_image(tmp_path / "a.gif").frames[0].image
    assert np.abs(out.astype(int) - face_photo).mean() < 40  # the first frame (palette-quantised)


@pytest.mark.parametrize("case", ["empty", "text_as_mp4", "text_as_jpg", "missing", "directory", "huge", "tiny",
                                  "truncated_jpg"])
def test_bad_inputs_raise_media_error_with_reason(tmp_path, case, face_photo):
    p = tmp_path / "x"
    if case == "empty":
        p = tmp_path / "empty.mp4"
        p.write_bytes(b"")
        msg = "empty"
    elif case == "text_as_mp4":
        p = tmp_path / "notes.mp4"
        p.write_text("this is not a video\n" * 50)
        msg = "not a readable video"
    elif case == "text_as_jpg":
        p = tmp_path / "notes.jpg"
        p.write_text("this is not an image\n" * 50)
        msg = "not a readable image"
    elif case == "missing":
        p = tmp_path / "nope.mp4"
        msg = "not found"
    elif case == "directory":
        p = tmp_path
        msg = "not a regular file"
    elif case == "huge":
        p = huge_png(tmp_path / "huge.png")
        msg = "too large"
    elif case == "tiny":
        p = tmp_path / "tiny.png"
        Image.new("RGB", (1, 1)).save(p)
        msg = "too small"
    elif case == "truncated_jpg":
        buf = io.BytesIO()
        Image.fromarray(face_photo).save(buf, "JPEG")
        p = tmp_path / "cut.jpg"
        p.write_bytes(buf.getvalue()[:200])
        msg = "image"
    with pytest.raises(MediaError, match=msg):
        load_media(p, 4)


def test_truncated_mp4_is_refused_with_a_reason(tmp_path, videos):
    v = next(p for p in videos if "youtube_519" in p.name)  # its index (moov) is at the end
    data = v.read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="not a readable video"):
        load_video(p, 8)


def test_truncated_stream_samples_what_is_there_and_warns(tmp_path, videos):
    """A file whose header promises more frames than it holds (AVI cut short)."""
    v = next(p for p in videos if "youtube_519" in p.name)
    frames = [f.image for f in load_video(v, 40).frames]
    clip = write_video(tmp_path / "full.avi", frames)
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    m = load_video(cut, 8)
    assert m.frame_count == 40 and len(m.frames) == 8
    assert m.frames[-1].index < 25  # spread over the first half, the part that exists
    assert m.warnings and "truncated" in m.warnings[0]


def test_limits_refuse_with_a_message(videos):
    from deepfake_demo.config import Limits

    v = next(p for p in videos if "youtube_634" in p.name)  # 1280x720, ~12 s
    with pytest.raises(MediaError, match=r"video is 1\d s long, above the 5 s limit"):
        load_video(v, 4, Limits(max_video_duration_s=5))
    with pytest.raises(MediaError, match="above the 1000 px limit"):
        load_video(v, 4, Limits(max_video_side=1000))
    with pytest.raises(MediaError, match="MB limit"):
        load_video(v, 4, Limits(max_file_mb=0.1))
    with pytest.raises(MediaError, match="analyse at most 7 frames"):
        load_video(v, 32, Limits(max_decoded_mb=20))
    with pytest.raises(MediaError, match="at most 256 frames"):
        load_video(v, 1000)


def test_video_qp_reads_how_hard_the_h264_stream_was_compressed(tmp_path, videos):
    """media.video_qp: the decoder's macroblock quantiser. A re-upload at crf 20 reads as lightly compressed,
    the same seconds at crf 42 as heavily (at or above the app's cut); a stream that is not H.264 gets None
    (another codec's scale), and load_video carries the figure."""
    v = next(p for p in videos if "youtube_634" in p.name)
    light = video_qp(reencode_h264(v, tmp_path / "light.mp4", 20))
    heavy = video_qp(reencode_h264(v, tmp_path / "heavy.mp4", 42))
    assert light is not None and heavy is not None
    assert light < DECISION.heavy_compression_qp <= heavy and heavy - light > 12
    assert load_video(tmp_path / "heavy.mp4", 4).video_qp == heavy
    frames = [f.image for f in load_video(v, 6).frames]
    mjpg = write_video(tmp_path / "clip.avi", frames)
    assert video_qp(mjpg) is None and load_video(mjpg, 4).video_qp is None
