"""Model zoo: constructors named like torchvision's where one exists.

``MODELS`` maps every constructor's name to it; ``IMAGENET_MODELS`` (224x224, 1000 classes by
default) and ``CIFAR_MODELS`` (32x32, 10 classes) split it by input. ``skip_init()`` builds models
with zero weights, for counting parameters and multiply-adds without drawing random weights.
"""
from tinyconv.models._layers import skip_init
from tinyconv.models.googlenet import (GoogLeNet, GoogLeNetOutputs, Inception, InceptionAux, googlenet,
                                       googlenet_cifar)
from tinyconv.models.mobilenet import DepthwiseSeparable, MobileNetV1, mobilenet_v1, mobilenet_v1_cifar
from tinyconv.models.resnet import ResNet, resnet, resnet18, resnet34, resnet50, resnet101, resnet152
from tinyconv.models.resnet_cifar import (CifarResNet, plain20, plain32, plain44, plain56, plain_cifar,
                                          resnet20, resnet32, resnet44, resnet56, resnet110, resnet_cifar)
from tinyconv.models.vgg import (VGG, vgg, vgg11, vgg11_cifar, vgg11_lrn, vgg13, vgg13_cifar, vgg16,
                                 vgg16_c, vgg16_cifar, vgg19, vgg19_cifar)

# The lecture's "fancier architectures" (multi-task, DAG, recurrent, two-stream, siamese, multi-scale,
# multi-modal); they take task-specific arguments, so they are listed in LECTURE_MODELS, not MODELS.
from tinyconv.models.dag import DAG, dag_cifar
from tinyconv.models.devise import DeViSE, devise_cifar, hinge_rank_loss
from tinyconv.models.multiscale import MultiScaleNet, gaussian_pyramid, laplacian_pyramid, multiscale
from tinyconv.models.multitask import ConvTrunk, MultiTaskNet, multitask_cifar, multitask_loss
from tinyconv.models.rcnn import RecurrentCNN, rcnn, rcnn_loss
from tinyconv.models.siamese import SiameseNet, contrastive_loss, siamese_cifar
from tinyconv.models.two_stream import StreamConvNet, TwoStreamNet, late_fusion, two_stream

CIFAR_MODELS = {name: globals()[name] for name in (
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "plain20", "plain32", "plain44", "plain56")}
"""He et al.'s CIFAR-10 ResNets and plain nets (what ``python -m tinyconv.train`` trains)."""

CIFAR_ZOO = {name: globals()[name] for name in (
    "vgg11_cifar", "vgg13_cifar", "vgg16_cifar", "vgg19_cifar", "googlenet_cifar", "mobilenet_v1_cifar")}
"""The classic ImageNet families in their 32x32 form (``examples/train_zoo.py`` trains them)."""

IMAGENET_MODELS = {name: globals()[name] for name in (
    "vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16", "vgg19", "googlenet",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v1")}
"""The ImageNet forms, as in their papers (224x224 inputs)."""

MODELS = {**IMAGENET_MODELS, **CIFAR_MODELS, **CIFAR_ZOO}
"""Every constructor by name; each takes ``num_classes=``."""

LECTURE_MODELS = {name: globals()[name] for name in (
    "multitask_cifar", "dag_cifar", "rcnn", "two_stream", "siamese_cifar", "multiscale", "devise_cifar")}
"""The lecture's fancier architectures (examples/multitask.py, dag.py, recurrent_cnn.py, two_stream.py,
siamese.py, multiscale.py, devise.py train them)."""
