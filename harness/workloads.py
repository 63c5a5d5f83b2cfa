"""The reference workloads of ../shared/WORKLOADS.md, written once: the thesis models, ResNet-50's convolutions and
the GEMM sizes. Every op's named shape sets (harness/ops/*.py) and the thesis models of nets/models.py derive from
these tables; tests/harness/test_workloads.py checks that the sets equal the shapes a built network uses.

The thesis CNNs: every convolution 3x3, stride 1, pad 1 (the output keeps the input's size), then ReLU and a 2x2/2
max pool; then the hidden dense layers (each + ReLU) and a dense output of 10 classes, softmax cross-entropy.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass

CLASSES = 10
BATCH = 32  # the thesis's mini-batch


@dataclass(frozen=True)
class ThesisModel:
    name: str
    input: tuple[int, int, int]  # C, H, W
    filters: tuple[int, ...]  # one 3x3 conv (+ ReLU + 2x2 pool) per entry
    hidden: tuple[int, ...]  # dense widths before the output layer


THESIS_MODELS = (
    ThesisModel("thesis-0", (3, 12, 12), (16, 32), (100,)),
    ThesisModel("thesis-1", (3, 32, 32), (16, 32), (100,)),
    ThesisModel("thesis-2", (3, 40, 40), (16, 32), (100,)),
    ThesisModel("thesis-3", (3, 40, 40), (16, 32, 32), (128, 50)),
    ThesisModel("thesis-4", (3, 50, 50), (32, 32, 32), (200, 50)),
)


# One convolution: C input channels of H x W, K filters of R x S, stride, pad (harness.ops.conv2d.Conv2dShape
# without the batch, which derives the output size)
ConvLayer = collections.namedtuple("ConvLayer", "C H W K R S stride pad", defaults=(3, 3, 1, 1))


def thesis_convs(model: ThesisModel) -> list[ConvLayer]:
    """The convolutions of one thesis model, in order: each keeps H x W (3x3, pad 1) and is followed by ReLU and a
    2x2/2 pool that halves them."""
    c, h, w = model.input
    layers = []
    for k in model.filters:
        layers.append(ConvLayer(c, h, w, k))
        c, h, w = k, h // 2, w // 2
    return layers


def thesis_dense(model: ThesisModel) -> list[tuple[int, int]]:
    """(in_features, out_features) of each dense layer: flattened last pool output -> hidden... -> classes."""
    last = thesis_convs(model)[-1]
    widths = [last.K * (last.H // 2) * (last.W // 2), *model.hidden, CLASSES]
    return list(itertools.pairwise(widths))


def thesis_params(model: ThesisModel) -> list[int]:
    """Element counts of every parameter tensor (weights, then biases, layer by layer): what SGD updates."""
    sizes = []
    for conv in thesis_convs(model):
        sizes += [conv.K * conv.C * conv.R * conv.S, conv.K]
    for k, n in thesis_dense(model):
        sizes += [k * n, n]
    return sizes


def unique(items) -> list:
    """Items in first-seen order without repeats (several models share layers)."""
    return list(dict.fromkeys(items))


# ResNet-50's convolutions (WORKLOADS.md), run at batch 32 and 128
RESNET50_CONVS = {
    "conv1": ConvLayer(3, 224, 224, 64, 7, 7, 2, 3),
    "res2 1x1 reduce": ConvLayer(256, 56, 56, 64, 1, 1, 1, 0),
    "res2 3x3": ConvLayer(64, 56, 56, 64),
    "res2 1x1 expand": ConvLayer(64, 56, 56, 256, 1, 1, 1, 0),
    "res3 3x3 (stride)": ConvLayer(128, 56, 56, 128, 3, 3, 2, 1),
    "res3 3x3": ConvLayer(128, 28, 28, 128),
    "res3 1x1 expand": ConvLayer(128, 28, 28, 512, 1, 1, 1, 0),
    "res4 3x3": ConvLayer(256, 14, 14, 256),
    "res4 1x1 expand": ConvLayer(256, 14, 14, 1024, 1, 1, 1, 0),
    "res5 3x3": ConvLayer(512, 7, 7, 512),
    "res5 1x1 reduce": ConvLayer(2048, 7, 7, 512, 1, 1, 1, 0),
}
RESNET50_POOL = (64, 112, 112, 3, 2)  # C, H, W, window, stride: the 3x3/2 max pool after conv1
RESNET50_ACTIVATIONS = ("conv1", "res2 1x1 expand", "res3 1x1 expand")  # ReLUs timed: these layers' outputs

# DeepBench's convolutions (baidu-research/DeepBench, code/kernels/conv_problems.h), in its own field order:
# W, H, C, N, K, S (filter width), R (filter height), pad_w, pad_h, stride_w, stride_h. One of each distinct layer
# of its training set at the largest batch listed there, and the speaker-ID layer of its inference-device set
# (20x5 filters, stride 8 x 2: the per-axis case).
DEEPBENCH_CONVS = {
    "speech 20x5/2": (700, 161, 1, 32, 32, 20, 5, 0, 0, 2, 2),
    "speech 10x5/2": (341, 79, 32, 32, 32, 10, 5, 0, 0, 2, 2),
    "speaker id 20x5/8x2": (151, 40, 1, 1, 32, 20, 5, 8, 8, 8, 2),
    "speech2 5x5/2 first": (700, 161, 1, 16, 64, 5, 5, 1, 1, 2, 2),
    "speech2 5x5/2": (350, 80, 64, 16, 128, 5, 5, 1, 1, 2, 2),
    "speech2 3x3": (175, 40, 128, 16, 128, 3, 3, 1, 1, 1, 1),
    "ocr 3x3 first": (480, 48, 1, 16, 16, 3, 3, 1, 1, 1, 1),
    "ocr 3x3 2": (240, 24, 16, 16, 32, 3, 3, 1, 1, 1, 1),
    "ocr 3x3 3": (120, 12, 32, 16, 64, 3, 3, 1, 1, 1, 1),
    "ocr 3x3 4": (60, 6, 64, 16, 128, 3, 3, 1, 1, 1, 1),
    "face 3x3/2 first": (108, 108, 3, 8, 64, 3, 3, 1, 1, 2, 2),
    "face 3x3 2": (54, 54, 64, 8, 64, 3, 3, 1, 1, 1, 1),
    "face 3x3 3": (27, 27, 128, 8, 128, 3, 3, 1, 1, 1, 1),
    "face 3x3 4": (14, 14, 128, 8, 256, 3, 3, 1, 1, 1, 1),
    "vision 3x3 first": (224, 224, 3, 16, 64, 3, 3, 1, 1, 1, 1),
    "vision 3x3 112": (112, 112, 64, 16, 128, 3, 3, 1, 1, 1, 1),
    "vision 3x3 28": (28, 28, 256, 16, 512, 3, 3, 1, 1, 1, 1),
    "vision 7x7/2": (224, 224, 3, 16, 64, 7, 7, 3, 3, 2, 2),
    "inception 5x5": (28, 28, 192, 16, 32, 5, 5, 2, 2, 1, 1),
    "inception 5x5 14": (14, 14, 512, 16, 48, 5, 5, 2, 2, 1, 1),
    "inception 5x5 7": (7, 7, 832, 16, 128, 5, 5, 2, 2, 1, 1),
    "resnet 1x1/2 pad 3": (7, 7, 2048, 16, 512, 1, 1, 3, 3, 2, 2),
}

# MobileNet-v1 (224 x 224 input): its depthwise 3x3 layers (C, H = W, stride) and pointwise 1x1 layers
# (C, H = W, K), each distinct one once; run at batch 32.
MOBILENET_DEPTHWISE = ((32, 112, 1), (64, 112, 2), (128, 56, 1), (128, 56, 2), (256, 28, 1), (256, 28, 2),
                       (512, 14, 1), (512, 14, 2), (1024, 7, 1))
MOBILENET_POINTWISE = ((32, 112, 64), (64, 56, 128), (128, 56, 128), (128, 28, 256), (256, 28, 256),
                       (256, 14, 512), (512, 14, 512), (512, 7, 1024), (1024, 7, 1024))
# ResNeXt-50 (32x4d): the grouped 3x3 convolution of each stage (C = K, H = W), 32 groups; batch 32
RESNEXT50_GROUPED = ((128, 56), (256, 28), (512, 14), (1024, 7))

# GEMM sizes (M, N, K) beyond the thesis's dense layers
GEMM_SQUARE = (512, 1024, 2048, 4096, 8192)
GEMM_TALL = ((16384, 64, 1024), (64, 16384, 1024))
