"""A small from-scratch residual CNN for 32x32 RGB images (a ResNet-9-style network).

Layout, with `width` = w (channels):

    input (float, 0..255) -> rescale to 0..1 -> per-channel standardisation
    stem    conv3x3(w)                                     32x32
    stage1  conv3x3(2w) -> maxpool -> residual(2 x conv3x3) 16x16
    stage2  conv3x3(4w) -> maxpool                          8x8
    stage3  conv3x3(8w) -> maxpool -> residual(2 x conv3x3) 4x4
    global max pool -> dense(classes) -> scale -> softmax (float32)

Every conv is conv (no bias) -> batch norm -> ReLU. Downsampling by max pooling keeps the
convolution count (and so the CPU cost) low; the two residual blocks give the depth. The
normalisation lives inside the model so serving feeds raw pixels. `width=32` trains at a few
hundred images per second on two CPU cores; `width=64` is the classic, slower, more accurate size.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

# Per-channel statistics of the CIFAR-10 training images, on the 0..1 scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _conv_bn_relu(
    x: keras.KerasTensor, filters: int, name: str, dtype: str | None
) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=dtype, name=f"{name}_conv")(
        x
    )
    x = layers.BatchNormalization(momentum=0.9, dtype=dtype, name=f"{name}_bn")(x)
    return layers.ReLU(dtype=dtype, name=f"{name}_relu")(x)


def _stage(
    x: keras.KerasTensor, filters: int, name: str, *, residual: bool, dtype: str | None
) -> keras.KerasTensor:
    x = _conv_bn_relu(x, filters, f"{name}_in", dtype)
    x = layers.MaxPooling2D(2, dtype=dtype, name=f"{name}_pool")(x)
    if residual:
        branch = _conv_bn_relu(x, filters, f"{name}_res1", dtype)
        branch = _conv_bn_relu(branch, filters, f"{name}_res2", dtype)
        x = layers.Add(dtype=dtype, name=f"{name}_add")([x, branch])
    return x


def build_cnn(
    num_classes: int = 10,
    *,
    width: int = 32,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    logit_scale: float = 0.125,
    dtype_policy: str | None = None,
    name: str = "cnn",
) -> keras.Model:
    """Builds the (uncompiled) network: float 0..255 pixels in, class probabilities out.

    `mean`/`std` are per-channel statistics on the 0..1 scale. `dtype_policy` (e.g.
    "mixed_bfloat16") applies to the convolutional body; normalisation and the softmax always run
    in float32, so the probabilities are float32 whatever the policy.
    """
    if width < 1:
        raise ValueError(f"width must be positive, got {width}")
    variance = [s * s for s in std]
    inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
    x = layers.Rescaling(1.0 / 255.0, dtype="float32", name="rescale")(inputs)
    x = layers.Normalization(mean=list(mean), variance=variance, dtype="float32", name="normalize")(
        x
    )
    x = _conv_bn_relu(x, width, "stem", dtype_policy)
    x = _stage(x, 2 * width, "stage1", residual=True, dtype=dtype_policy)
    x = _stage(x, 4 * width, "stage2", residual=False, dtype=dtype_policy)
    x = _stage(x, 8 * width, "stage3", residual=True, dtype=dtype_policy)
    x = layers.GlobalMaxPooling2D(dtype=dtype_policy, name="pool")(x)
    x = layers.Dense(num_classes, dtype=dtype_policy, name="logits")(x)
    # Damping the logits keeps early softmax outputs soft, which steadies high learning rates.
    x = layers.Rescaling(logit_scale, dtype="float32", name="logit_scale")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
