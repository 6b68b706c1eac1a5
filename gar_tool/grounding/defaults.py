"""Default grounding checkpoints (hub ids), importable without torch (for CLI help texts)."""

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
DEFAULT_SEGMENTER = "facebook/sam-vit-base"

__all__ = ["DEFAULT_DETECTOR", "DEFAULT_SEGMENTER"]
