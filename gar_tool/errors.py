"""The exceptions gar-agent raises, in one place.

Hierarchy::

    GARError                      base of everything raised on purpose by gar_tool
    ├── InputError (ValueError)   the caller's input is wrong: fix the arguments and retry
    │   ├── RegionError           a region prompt is malformed (empty mask, box outside image, ...)
    │   ├── PromptError           question / region mismatch (<PromptN> with no region N, ...)
    │   └── ModelNotFoundError    a model path or hub id that cannot be resolved to local files
    └── ModelError (RuntimeError) a checkpoint is present but unusable (bad config, missing weights)

The CLI maps ``InputError`` and ``ModelError`` (the model argument names unusable files) to exit
code 2 and any other ``GARError`` to exit code 1; tool adapters
turn ``InputError`` into "retry with other arguments" failures the agent can see.
"""

from __future__ import annotations


class GARError(Exception):
    """Base class of every exception gar_tool raises deliberately."""


class InputError(GARError, ValueError):
    """Invalid input supplied by the caller (retryable with other arguments)."""


class RegionError(InputError):
    """A region prompt (mask, RLE, box, points, polygon) is malformed or does not fit the image."""


class PromptError(InputError):
    """The question and the regions do not match (unknown ``<PromptN>``, unused region, ...)."""


class ModelNotFoundError(InputError):
    """A model argument names neither a usable local directory nor a cached / downloadable hub id."""


class ModelError(GARError, RuntimeError):
    """A checkpoint was found but cannot be used (inconsistent config, missing tensors, ...)."""


__all__ = [
    "GARError",
    "InputError",
    "RegionError",
    "PromptError",
    "ModelNotFoundError",
    "ModelError",
]
