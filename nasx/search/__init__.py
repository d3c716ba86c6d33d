"""Search strategies (config group ``search``): ask/tell, never train."""

from nasx.search.base import SearchStrategy as SearchStrategy
from nasx.search.evolution import EvolutionSearch as EvolutionSearch
from nasx.search.gan import GANSearch as GANSearch
from nasx.search.msunas import MSuNASSearch as MSuNASSearch
from nasx.search.nsga import NSGASearch as NSGASearch
from nasx.search.random_search import RandomSearch as RandomSearch

__all__ = [
    "EvolutionSearch",
    "GANSearch",
    "MSuNASSearch",
    "NSGASearch",
    "RandomSearch",
    "SearchStrategy",
]
