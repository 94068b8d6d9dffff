"""Translation of torchvision transforms into the PreprocessSpec JSON, and the refusals."""

import json

import pytest
import torch

from apus_export import UnsupportedTransformError
from apus_export.preprocess import translate

torchvision = pytest.importorskip("torchvision")
from torchvision.transforms import InterpolationMode  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision import transforms as T  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def steps(transform):
    spec = translate(transform)
    assert json.loads(json.dumps(spec, allow_nan=False)) == spec  # plain JSON
    return spec["steps"]


def test_image_classification_preset_expands_to_its_five_steps():
    preset = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()
    assert steps(preset) == [
        {"op": "resize", "size": [232], "interpolation": "bilinear", "antialias": True},
        {"op": "center_crop", "size": [224]},
        {"op": "pil_to_tensor"},
        {"op": "convert_image_dtype", "dtype": "float32"},
        {"op": "normalize", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    ]


def test_preset_with_bicubic_interpolation():
    preset = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.transforms()
    assert steps(preset)[0] == {"op": "resize", "size": [256], "interpolation": "bicubic", "antialias": True}


@pytest.mark.filterwarnings("ignore:The transform `ToTensor\\(\\)` is deprecated")
@pytest.mark.parametrize("tv", [T, v2], ids=["v1", "v2"])
def test_classic_compose(tv):
    extra = [] if tv is T else [v2.Identity()]
    pipeline = tv.Compose([tv.Resize(256), tv.CenterCrop(224), *extra, tv.ToTensor(),
                           tv.Normalize(IMAGENET_MEAN, IMAGENET_STD, inplace=True)])
    assert steps(pipeline) == [
        {"op": "resize", "size": [256], "interpolation": "bilinear", "antialias": True},
        {"op": "center_crop", "size": [224, 224]},
        {"op": "to_tensor"},
        {"op": "normalize", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    ]


@pytest.mark.parametrize("tv", [T, v2], ids=["v1", "v2"])
@pytest.mark.parametrize("interpolation,name", [
    (InterpolationMode.NEAREST, "nearest"), (InterpolationMode.BILINEAR, "bilinear"),
    (InterpolationMode.BICUBIC, "bicubic"), (0, "nearest"), (2, "bilinear"), (3, "bicubic")])
def test_resize_interpolations(tv, interpolation, name):
    assert steps(tv.Resize((120, 160), interpolation=interpolation)) == [
        {"op": "resize", "size": [120, 160], "interpolation": name, "antialias": True}]


@pytest.mark.parametrize("antialias", [True, False, None])
def test_resize_is_always_antialiased_for_pil_images(antialias):
    (step,) = steps(T.Resize(64, antialias=antialias))
    assert step["antialias"] is True


@pytest.mark.parametrize("tv", [T, v2], ids=["v1", "v2"])
def test_resize_max_size_and_one_element_size(tv):
    assert steps(tv.Resize([300], max_size=500)) == [
        {"op": "resize", "size": [300], "interpolation": "bilinear", "antialias": True, "max_size": 500}]


@pytest.mark.parametrize("tv", [T, v2], ids=["v1", "v2"])
@pytest.mark.parametrize("padding,expected", [(3, [3, 3, 3, 3]), ((1, 2), [1, 2, 1, 2]),
                                              ((1, 2, 3, 4), [1, 2, 3, 4]), ([5], [5, 5, 5, 5])])
def test_pad(tv, padding, expected):
    assert steps(tv.Pad(padding, fill=7)) == [
        {"op": "pad", "padding": expected, "fill": 7, "padding_mode": "constant"}]


@pytest.mark.parametrize("tv", [T, v2], ids=["v1", "v2"])
def test_pil_to_tensor_convert_dtype_normalize(tv):
    pipeline = tv.Compose([tv.CenterCrop((100, 80)), tv.PILToTensor(), tv.ConvertImageDtype(torch.float32),
                           tv.Normalize((0.5,), (0.5,))])
    assert steps(pipeline) == [
        {"op": "center_crop", "size": [100, 80]},
        {"op": "pil_to_tensor"},
        {"op": "convert_image_dtype", "dtype": "float32"},
        {"op": "normalize", "mean": [0.5], "std": [0.5]},
    ]


def test_v2_to_image_and_to_dtype_with_scale():
    pipeline = v2.Compose([v2.Resize(32), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    assert steps(pipeline)[1:] == [{"op": "pil_to_tensor"}, {"op": "convert_image_dtype", "dtype": "float32"}]


def test_nested_compose_lists_and_sequential_are_flattened():
    inner = T.Compose([T.Resize(10), T.CenterCrop(8)])
    assert steps([inner, T.Compose([T.ToTensor()])]) == steps(T.Compose([T.Resize(10), T.CenterCrop(8),
                                                                         T.ToTensor()]))
    assert steps(torch.nn.Sequential(T.CenterCrop(8), v2.PILToTensor(), T.ConvertImageDtype(torch.float32))) == [
        {"op": "center_crop", "size": [8, 8]}, {"op": "pil_to_tensor"},
        {"op": "convert_image_dtype", "dtype": "float32"}]


# --- refusals ----------------------------------------------------------------------------------


def refused(transform, *patterns):
    with pytest.raises(UnsupportedTransformError) as info:
        translate(transform)
    for pattern in patterns:
        assert pattern in str(info.value), str(info.value)
    return str(info.value)


def test_refuses_lambda_naming_class_and_position():
    message = refused(T.Compose([T.Resize(256), T.Lambda(lambda x: x), T.ToTensor()]),
                      "transform[1]", "torchvision.transforms.transforms.Lambda")
    assert message.startswith("transform[1] (")


def test_refusal_position_inside_nested_compose():
    refused(T.Compose([T.Resize(8), T.Compose([T.CenterCrop(4), T.RandomHorizontalFlip()])]),
            "transform[1][1]", "RandomHorizontalFlip")


@pytest.mark.parametrize("transform,name", [
    (T.RandomCrop(32), "RandomCrop"), (T.ColorJitter(0.1), "ColorJitter"), (T.Grayscale(), "Grayscale"),
    (T.RandomResizedCrop(224), "RandomResizedCrop"), (v2.RandomCrop(32), "RandomCrop"),
    (v2.Lambda(lambda x: x), "Lambda"), (v2.RGB(), "RGB")])
def test_refuses_unsupported_torchvision_transforms(transform, name):
    refused(transform, "transform (", name)


def test_refuses_custom_classes():
    class MyTransform(torch.nn.Module):
        def forward(self, x):
            return x

    refused(T.Compose([MyTransform()]), "transform[0]", "MyTransform", "not a torchvision transform")
    refused(T.Compose([lambda x: x]), "transform[0]", "function")


@pytest.mark.parametrize("transform,pattern", [
    (T.Resize(64, interpolation=InterpolationMode.LANCZOS), "interpolation 'lanczos'"),
    (T.Resize(64, interpolation=InterpolationMode.NEAREST_EXACT), "interpolation 'nearest-exact'"),
    (T.Resize(64, interpolation=InterpolationMode.BOX), "interpolation 'box'"),
    (T.Pad(2, padding_mode="reflect"), "padding_mode 'reflect'"),
    (T.Pad(2, fill=(1, 2, 3)), "fill must be an int"),
    (T.Pad(2, fill=0.5), "fill must be an int"),
    (T.ConvertImageDtype(torch.float64), "only conversion to torch.float32"),
    (v2.ToDtype(torch.float32), "ToDtype without scale=True"),
    (v2.Resize(size=None, max_size=100), "size=None"),
])
def test_refuses_unsupported_settings(transform, pattern):
    refused(T.Compose([T.PILToTensor(), transform]) if "Dtype" in type(transform).__name__ else transform, pattern)


def test_refuses_orders_whose_meaning_differs():
    refused(T.Compose([T.ToTensor(), T.Resize(32)]), "transform[1]", "Resize must act on the PIL image")
    refused(T.Compose([T.Normalize([0.5], [0.5]), T.ToTensor()]), "transform[0]", "Normalize needs a float tensor")
    refused(T.Compose([T.PILToTensor(), T.Normalize([0.5], [0.5])]), "needs a float tensor but gets a uint8 tensor")
    refused(T.Compose([T.ToTensor(), T.ToTensor()]), "transform[1]", "ToTensor expects a PIL image")
    refused(T.ConvertImageDtype(torch.float32), "needs a tensor")
