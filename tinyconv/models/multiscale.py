"""Multi-scale convolutional networks with weights shared across scales (Farabet, Couprie, Najman &
LeCun 2013, "Learning Hierarchical Features for Scene Labeling", TPAMI).

The input x is turned into a pyramid X_0 = x, X_1, ..., X_{S-1} (each level half the previous
size). One network f, with the same weights at every scale, maps each level to features
F_s = f(X_s) of shape (N, w, H / 2^s, W / 2^s); each is upsampled back to H x W (nearest
neighbour, u_s = up_{2^s}(F_s)) and the maps are concatenated: F = [u_0, u_1, ..., u_{S-1}], with
S * w channels per pixel. A pixel's feature vector then describes its neighbourhood at S sizes: the
same 7x7 filters see 7x7, 14x14, 28x28 ... pixels of the original image. Sharing f means the
scales see the same kind of features (scale invariance) and the parameter count does not grow
with S; dL/dW = sum_s dL/dW|_s.

Pyramids, both built from differentiable ops (2x2 average pooling down, nearest upsampling up):
    Gaussian:   G_0 = x,  G_{s+1} = avgpool_2(G_s)
    Laplacian:  L_s = G_s - up_2(G_{s+1}) for s < S-1 (band-pass detail),  L_{S-1} = G_{S-1}
(The paper uses a Laplacian pyramid, then local contrast normalisation of each level; this
implementation leaves out the contrast normalisation.)

The classifier -- our choice, as in the paper -- labels every pixel: a two-layer per-pixel
network (1x1 conv - ReLU - 1x1 conv) on F gives (N, K, H, W) class scores. ``dense=False``
instead averages F over the image and classifies it (N, K).

f: conv3x3(C -> w1) - ReLU - conv3x3(w1 -> w2) - ReLU - conv3x3(w2 -> w3) - ReLU, 'same' padding,
no batch norm: the levels of a Laplacian pyramid have very different statistics, so running
statistics shared across scales would fit none of them.
"""
import tinyconv.functional as F
from tinyconv import nn
from tinyconv.models.multitask import init_relu_convs


def gaussian_pyramid(x, levels):
    """[G_0 = x, G_1, ..., G_{levels-1}], G_{s+1} = 2x2 average pool of G_s; H, W need 2^(levels-1) | H, W."""
    h, w = x.shape[2:]
    if h % 2 ** (levels - 1) or w % 2 ** (levels - 1):
        raise ValueError(f"pyramid: {levels} levels need H and W divisible by {2 ** (levels - 1)}, "
                         f"got input shape {x.shape}")
    out = [x]
    for _ in range(levels - 1):
        out.append(F.avg_pool2d(out[-1], 2))
    return out


def laplacian_pyramid(x, levels):
    """[L_0, ..., L_{levels-1}]: L_s = G_s - up_2(G_{s+1}), the last level is G_{levels-1}.

    Exactly invertible: G_s = L_s + up_2(G_{s+1}), so x can be rebuilt from the pyramid."""
    g = gaussian_pyramid(x, levels)
    return [g[s] - F.upsample_nearest(g[s + 1], 2) for s in range(levels - 1)] + [g[-1]]


class MultiScaleNet(nn.Module):
    """Shared-weight multi-scale features with a per-pixel (``dense=True``) or per-image classifier.

    forward(x (N, C, H, W)) -> (N, K, H, W) if dense else (N, K).
    """

    def __init__(self, in_channels=3, num_classes=3, scales=3, widths=(16, 32, 32), hidden=64,
                 pyramid="laplacian", dense=True):
        super().__init__()
        if pyramid not in ("laplacian", "gaussian"):
            raise ValueError(f"MultiScaleNet: pyramid must be 'laplacian' or 'gaussian', got {pyramid!r}")
        if scales < 1:
            raise ValueError(f"MultiScaleNet: scales must be >= 1, got {scales}")
        self.scales, self.pyramid, self.dense = int(scales), pyramid, bool(dense)
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
            c = w
        self.features = nn.Sequential(*layers)       # f, the one network every scale uses
        concat = c * self.scales
        if self.dense:
            self.classifier = nn.Sequential(nn.Conv2d(concat, hidden, 1), nn.ReLU(),
                                            nn.Conv2d(hidden, num_classes, 1))
        else:
            self.classifier = nn.Sequential(nn.GlobalAvgPool2d(), nn.Linear(concat, hidden), nn.ReLU(),
                                            nn.Linear(hidden, num_classes))
        init_relu_convs(self, keep=[m for m in self.classifier.modules() if isinstance(m, nn.Conv2d)][-1:])

    def build_pyramid(self, x):
        build = laplacian_pyramid if self.pyramid == "laplacian" else gaussian_pyramid
        return build(x, self.scales)

    def multiscale_features(self, x):
        """F = concat over s of upsample_{2^s}(f(X_s)): (N, S * w, H, W)."""
        maps = []
        for s, level in enumerate(self.build_pyramid(x)):
            f = self.features(level)
            maps.append(f if s == 0 else F.upsample_nearest(f, 2 ** s))
        return maps[0] if len(maps) == 1 else F.concat(maps, axis=1)

    def forward(self, x):
        return self.classifier(self.multiscale_features(x))

    def extra_repr(self):
        return f"scales={self.scales}, pyramid={self.pyramid!r}, dense={self.dense}"


def multiscale(num_classes=3, scales=3, widths=(16, 32, 32), hidden=64, pyramid="laplacian", dense=True):
    """The demo configuration (per-pixel labels, 3-level Laplacian pyramid)."""
    return MultiScaleNet(3, num_classes, scales, widths, hidden, pyramid, dense)
