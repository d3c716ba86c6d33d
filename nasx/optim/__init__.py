"""Optimisers and the candidate fine-tuning step (plain PyTorch; Lightning wraps them)."""

from nasx.optim.finetune import FinetuneSpec as FinetuneSpec
from nasx.optim.finetune import finetune as finetune
from nasx.optim.sam import SAM as SAM

__all__ = ["SAM", "FinetuneSpec", "finetune"]
