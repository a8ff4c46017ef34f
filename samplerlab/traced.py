"""Compatibility import: ``from samplerlab.traced import TracedParams`` keeps working.

The mechanism is :class:`samplerlab.decoding.params.ProgramParams` (parameters that are
inputs of the compiled program); ``TracedParams`` is its older name, documented in
docs/writing-plugins.md for plugins written before the rename.
"""

from samplerlab.decoding.params import ProgramParams

TracedParams = ProgramParams

__all__ = ["ProgramParams", "TracedParams"]
