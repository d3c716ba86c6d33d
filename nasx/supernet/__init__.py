"""Weight-sharing supernets (one module per space) and their training recipes (``supernet=``).

Importing this package registers every space's supernet (`register_supernet`).
"""

from nasx.supernet import darts as _darts  # noqa: F401  (registration)
from nasx.supernet import mobilenet as _mobilenet  # noqa: F401  (registration)
from nasx.supernet import nag_cell as _nag_cell  # noqa: F401  (registration)
from nasx.supernet import nb201 as _nb201  # noqa: F401  (registration)
from nasx.supernet import ofa_mbv3 as _ofa_mbv3  # noqa: F401  (registration)
from nasx.supernet.base import Supernet as Supernet
from nasx.supernet.base import build_supernet as build_supernet
from nasx.supernet.base import register_supernet as register_supernet
from nasx.supernet.recipe import TrainingRecipe as TrainingRecipe
from nasx.supernet.weights import load_supernet as load_supernet

__all__ = ["Supernet", "TrainingRecipe", "build_supernet", "load_supernet", "register_supernet"]
