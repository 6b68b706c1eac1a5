"""Pure preprocessing for GAR: tiling, label maps, prompt texts and token ids (no model)."""

from .processor import GARInputs, GARProcessor, Geometry, normalized_box
from .prompts import COMPAT_MODES, DESCRIBE_INSTRUCTION, Compat, prompt_refs
from .vocab import GARVocab

__all__ = ["GARInputs", "GARProcessor", "Geometry", "GARVocab", "Compat", "COMPAT_MODES",
           "DESCRIBE_INSTRUCTION", "normalized_box", "prompt_refs"]
