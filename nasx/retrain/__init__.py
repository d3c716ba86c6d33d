"""Retraining of selected architectures (config group ``retrain``): recipe and augmentation."""

from nasx.retrain.augment import BatchAugment as BatchAugment
from nasx.retrain.recipe import RetrainRecipe as RetrainRecipe

__all__ = ["BatchAugment", "RetrainRecipe"]
