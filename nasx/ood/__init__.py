"""Out-of-distribution robustness: CIFAR-10-C / CIFAR-100-C corruptions and FlatNAS's mCE."""

from nasx.ood.corruptions import CIFAR_C_PARAMS as CIFAR_C_PARAMS
from nasx.ood.corruptions import CORRUPTIONS as CORRUPTIONS
from nasx.ood.corruptions import SEVERITIES as SEVERITIES
from nasx.ood.corruptions import CorruptedImages as CorruptedImages
from nasx.ood.corruptions import CorruptionSource as CorruptionSource
from nasx.ood.corruptions import corrupt_images as corrupt_images
from nasx.ood.corruptions import corruption_rng as corruption_rng
from nasx.ood.corruptions import generate_corrupted as generate_corrupted
from nasx.ood.corruptions import images_digest as images_digest
from nasx.ood.corruptions import read_official as read_official
from nasx.ood.evaluate import corruption_accuracy as corruption_accuracy
from nasx.ood.evaluate import to_network_input as to_network_input
from nasx.ood.evaluate import to_pixels as to_pixels

__all__ = [
    "CIFAR_C_PARAMS",
    "CORRUPTIONS",
    "SEVERITIES",
    "CorruptedImages",
    "CorruptionSource",
    "corrupt_images",
    "corruption_accuracy",
    "corruption_rng",
    "generate_corrupted",
    "images_digest",
    "read_official",
    "to_network_input",
    "to_pixels",
]
