"""Recurrent convolutional network for dense labelling, unrolled in time (Pinheiro & Collobert 2014,
"Recurrent Convolutional Neural Networks for Scene Labeling", ICML).

One convolutional network f with weights W is applied T times. Step t sees the input image I and
the previous step's per-pixel class probabilities, stacked on the channel axis:

    z_1 = f_W([I, 0]),    z_t = f_W([I, softmax(z_{t-1})])   for t = 2..T        (N, K, H, W)

Every step is supervised: L = (1/T) sum_t CE(z_t, Y), the mean per-pixel cross-entropy against the
label map Y (N, H, W) (the paper sums over steps; the mean only rescales the learning rate).
Backprop runs through the unrolled graph: W is used T times, so dL/dW = sum_t dL/dW|_t, and
the gradient of step t also flows back through softmax(z_{t-1}) into the earlier steps. The
receptive field grows with every step (each step adds f's own field), so later steps can use
context the first step cannot see, and their predictions improve on the first step's.

Differences from the paper, for a small CPU demo: f keeps the full resolution (dilated 3x3 convs
instead of pooling, so no label downsampling is needed), ReLU instead of tanh, T = 3, and the
previous prediction enters as soft probabilities (the first step gets zeros).

f: conv3x3(C + K -> w, dilation d1) - ReLU - conv3x3(w -> w, d2) - ReLU - conv3x3(w -> w, d3) - ReLU
   - conv1x1(w -> K), dilations (1, 2, 4) by default: a 15x15 receptive field per step.

The demo task (``border_contrast_labels``, used by ``examples/recurrent_cnn.py`` and
``examples/multiscale.py``) labels the pixels of real CIFAR images from the images themselves.
"""
import numpy as np

import tinyconv.functional as F
from tinyconv import nn
from tinyconv.models.multitask import init_relu_convs
from tinyconv.tensor import Tensor


class RecurrentCNN(nn.Module):
    """The unrolled recurrent CNN; ``forward(x)`` returns a list of T logit maps (N, K, H, W).

    in_channels: image channels C; num_classes: K; width: w; steps: T; dilations: of the three 3x3
    convs. All steps share the single module ``self.step`` (its Parameters are used T times).
    """

    def __init__(self, in_channels=3, num_classes=3, width=32, steps=3, dilations=(1, 2, 4)):
        super().__init__()
        if steps < 1:
            raise ValueError(f"RecurrentCNN: steps must be >= 1, got {steps}")
        self.in_channels, self.num_classes, self.steps = int(in_channels), int(num_classes), int(steps)
        layers, c = [], self.in_channels + self.num_classes
        for d in dilations:
            layers += [nn.Conv2d(c, width, 3, padding=d, dilation=d), nn.ReLU()]
            c = width
        layers.append(nn.Conv2d(c, self.num_classes, 1))
        self.step = init_relu_convs(nn.Sequential(*layers), keep=layers[-1:])

    def forward(self, x, steps=None):
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"RecurrentCNN: expected {self.in_channels} input channels, got shape {x.shape}")
        # The first step has no previous prediction: a constant zero map (no gradient).
        prev = Tensor(x.xp.zeros((n, self.num_classes, h, w), dtype=x.dtype))
        outputs = []
        for _ in range(self.steps if steps is None else steps):
            z = self.step(F.concat([x, prev], axis=1))
            outputs.append(z)
            prev = F.softmax(z, axis=1)
        return outputs

    def extra_repr(self):
        return f"steps={self.steps}, num_classes={self.num_classes}"


def pixel_cross_entropy(logits, labels):
    """Mean cross-entropy over every pixel: logits (N, K, H, W), labels int (N, H, W)."""
    n, k, h, w = logits.shape
    flat = logits.transpose(0, 2, 3, 1).reshape(n * h * w, k)
    labels = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    return F.cross_entropy(flat, labels.reshape(-1))


def rcnn_loss(outputs, labels):
    """(1/T) sum_t pixel_cross_entropy(z_t, labels); returns (loss, [per-step loss floats])."""
    losses = [pixel_cross_entropy(z, labels) for z in outputs]
    total = losses[0]
    for loss in losses[1:]:
        total = total + loss
    return total / float(len(losses)), [float(loss.item()) for loss in losses]


def pixel_accuracy(logits, labels):
    """Fraction of pixels whose arg-max class equals the label."""
    pred = logits.data.argmax(axis=1)
    return float((pred == np.asarray(labels)).mean())


# ---- the dense-labelling task built from real images ----------------------------------------------

def box_blur(images, radius):
    """Mean over a (2r+1)^2 window at every pixel of (N, C, H, W), edges replicated; separable,
    with cumulative sums (O(1) per pixel whatever the radius)."""
    k = 2 * radius + 1
    a = np.pad(np.asarray(images, dtype=np.float64), ((0, 0), (0, 0), (radius, radius), (radius, radius)),
               mode="edge")
    for axis in (2, 3):
        c = np.cumsum(a, axis=axis)
        zero = np.zeros_like(np.take(c, [0], axis=axis))
        c = np.concatenate([zero, c], axis=axis)
        n = c.shape[axis]
        a = np.take(c, np.arange(k, n), axis=axis) - np.take(c, np.arange(0, n - k), axis=axis)
    return a / (k * k)


def border_contrast_labels(images, threshold=0.15, blur_radius=2, ring=2):
    """A deterministic 3-class per-pixel labelling of real photos ("border-contrast segmentation").

    images: uint8 (N, 3, H, W) (or floats in [0, 1]). For each image:
      1. b = mean RGB colour of the outer ``ring`` pixels (the border, a proxy for the background);
      2. B = the image box-blurred over (2 * blur_radius + 1)^2 pixels (so labels form regions, not
         single noisy pixels);
      3. a pixel is foreground when ||B(p) - b||_2 > threshold (RGB in [0, 1] units), else class 0
         (background: looks like the border);
      4. foreground pixels are class 1 when B's luminance (0.299 R + 0.587 G + 0.114 B) is below the
         border's, class 2 when it is at least the border's (darker / brighter than the background).

    Returns int64 labels (N, H, W). The label of a pixel depends on the border colour, i.e. on
    pixels up to ~H/2 away, so a net with a small receptive field cannot get it right everywhere:
    context has to travel, which is what the recurrent steps (and multi-scale inputs) provide.
    With the defaults, the first 2,000 CIFAR-10 test images give 36% / 35% / 29% of the pixels
    in classes 0 / 1 / 2.
    """
    x = np.asarray(images)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    n, c, h, w = x.shape
    if c != 3:
        raise ValueError(f"border_contrast_labels: need RGB (N, 3, H, W) images, got shape {x.shape}")
    mask = np.ones((h, w), dtype=bool)
    mask[ring:h - ring, ring:w - ring] = False
    border = x[:, :, mask].mean(axis=2)                      # (N, 3)
    blurred = box_blur(x, blur_radius)                       # (N, 3, H, W)
    distance = np.sqrt(((blurred - border[:, :, None, None]) ** 2).sum(axis=1))
    luma = np.array([0.299, 0.587, 0.114])
    brighter = np.einsum("nchw,c->nhw", blurred, luma) >= (border @ luma)[:, None, None]
    return np.where(distance > threshold, np.where(brighter, 2, 1), 0).astype(np.int64)


def rcnn(num_classes=3, width=32, steps=3, in_channels=3):
    """The demo configuration: RecurrentCNN with dilations (1, 2, 4)."""
    return RecurrentCNN(in_channels, num_classes, width, steps)
