"""Model zoo: constructors named like torchvision's where one exists."""
from tinyconv.models.resnet_cifar import (CifarResNet, plain20, plain32, plain44, plain56, plain_cifar,
                                          resnet20, resnet32, resnet44, resnet56, resnet110, resnet_cifar)

CIFAR_MODELS = {name: globals()[name] for name in (
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "plain20", "plain32", "plain44", "plain56")}
