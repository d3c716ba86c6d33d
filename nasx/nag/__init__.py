"""NAG's conditional architecture generator (Jing et al., 2022), independent of the space.

`graph` holds cells as vertex-op DAGs and the `GraphAdapter` contract; `gan` the generator and
discriminator (plain PyTorch); `labels` the requirement classes and conditions; `sampling`
the generation of architectures for a condition. Training is Lightning's:
`nasx.lit.nag.train_generator`.
"""

from nasx.nag.gan import NAGDiscriminator as NAGDiscriminator
from nasx.nag.gan import NAGGenerator as NAGGenerator
from nasx.nag.graph import CellGraph as CellGraph
from nasx.nag.graph import GraphAdapter as GraphAdapter
from nasx.nag.labels import Condition as Condition
from nasx.nag.nb201_adapter import NB201GraphAdapter as NB201GraphAdapter
from nasx.nag.sampling import generate as generate

__all__ = [
    "CellGraph",
    "Condition",
    "GraphAdapter",
    "NAGDiscriminator",
    "NAGGenerator",
    "NB201GraphAdapter",
    "generate",
]
