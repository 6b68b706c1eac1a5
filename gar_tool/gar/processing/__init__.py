"""Pure preprocessing for GAR: tiling, label maps, prompt texts and token ids (no model)."""

from gar_tool.gar.processing.processor import GARInputs, GARProcessor, Geometry, normalized_box
from gar_tool.gar.processing.prompts import COMPAT_MODES, DESCRIBE_INSTRUCTION, Compat, prompt_refs
from gar_tool.gar.processing.vocab import GARVocab

__all__ = ["GARInputs", "GARProcessor", "Geometry", "GARVocab", "Compat", "COMPAT_MODES",
           "DESCRIBE_INSTRUCTION", "normalized_box", "prompt_refs"]
