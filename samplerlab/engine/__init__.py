"""The engine: what happens to one cell, wherever it runs.

``cell`` builds the sampler, batches the prompts, calls the compiled program and splits
and times the results; ``programs`` compiles (and keeps on disk) one generate program per
sampler structure (the loop those programs run is :mod:`samplerlab.decoding.generate`);
``extra_models`` loads the models a sampler needs besides the target; ``stop_strings``
is the step observer of ``generation.stop``; ``seeds`` derives every seed.
"""

from samplerlab.engine.cell import STOP_END, STOP_MAX, CellEngine, CellFailed, CellOutput
from samplerlab.engine.seeds import cell_seed, derive_seed

__all__ = ["STOP_END", "STOP_MAX", "CellEngine", "CellFailed", "CellOutput", "cell_seed",
           "derive_seed"]
