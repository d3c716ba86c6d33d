"""Datasets (config group ``dataset``)."""

from nasx.data.base import ImageData as ImageData
from nasx.data.base import TensorImageData as TensorImageData
from nasx.data.cifar10 import CIFAR10Data as CIFAR10Data
from nasx.data.cifar100 import CIFAR100Data as CIFAR100Data
from nasx.data.cinic10 import CINIC10Data as CINIC10Data
from nasx.data.digits import DigitsData as DigitsData
from nasx.data.fake import FakeData as FakeData
from nasx.data.folder import ImageFolderData as ImageFolderData
from nasx.data.stl10 import STL10Data as STL10Data
from nasx.data.svhn import SVHNData as SVHNData
from nasx.data.transfer import DTDData as DTDData
from nasx.data.transfer import FGVCAircraftData as FGVCAircraftData
from nasx.data.transfer import Flowers102Data as Flowers102Data
from nasx.data.transfer import OxfordPetsData as OxfordPetsData
from nasx.data.transfer import TorchvisionFolderData as TorchvisionFolderData

__all__ = [
    "CIFAR10Data",
    "CIFAR100Data",
    "CINIC10Data",
    "DTDData",
    "DigitsData",
    "FGVCAircraftData",
    "FakeData",
    "Flowers102Data",
    "ImageData",
    "ImageFolderData",
    "OxfordPetsData",
    "STL10Data",
    "SVHNData",
    "TensorImageData",
    "TorchvisionFolderData",
]
