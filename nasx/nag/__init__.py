"""NAG's conditional architecture generator (Jing et al., 2022), independent of the space.

`graph` holds cells as vertex-op DAGs and the `GraphAdapter` contract (`adapters`: one per
cell space, NAS-Bench-201 and NAG's own); `dataset` the versioned NAS-dataset file and its
builders; `gan` the generator and discriminator (plain PyTorch); `labels` the requirement
classes and conditions; `sampling` the generation of architectures for a condition. Training
is Lightning's: `nasx.lit.nag.train_generator`. The search strategy is `nasx.search.GANSearch`.
"""

from nasx.nag.adapters import adapter_for as adapter_for
from nasx.nag.dataset import NASDataset as NASDataset
from nasx.nag.gan import NAGDiscriminator as NAGDiscriminator
from nasx.nag.gan import NAGGenerator as NAGGenerator
from nasx.nag.graph import CellGraph as CellGraph
from nasx.nag.graph import GraphAdapter as GraphAdapter
from nasx.nag.labels import Condition as Condition
from nasx.nag.nag_cell_adapter import NAGCellGraphAdapter as NAGCellGraphAdapter
from nasx.nag.nb201_adapter import NB201GraphAdapter as NB201GraphAdapter
from nasx.nag.sampling import generate as generate

__all__ = [
    "CellGraph",
    "Condition",
    "GraphAdapter",
    "NASDataset",
    "NAGCellGraphAdapter",
    "NAGDiscriminator",
    "NAGGenerator",
    "NB201GraphAdapter",
    "adapter_for",
    "generate",
]
