"""Datasets (config group ``dataset``)."""

from nasx.data.base import ImageData as ImageData
from nasx.data.base import TensorImageData as TensorImageData
from nasx.data.cifar10 import CIFAR10Data as CIFAR10Data
from nasx.data.digits import DigitsData as DigitsData
from nasx.data.fake import FakeData as FakeData
from nasx.data.folder import ImageFolderData as ImageFolderData

__all__ = [
    "CIFAR10Data",
    "DigitsData",
    "FakeData",
    "ImageData",
    "ImageFolderData",
    "TensorImageData",
]
