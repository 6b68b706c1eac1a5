"""The torch ``Dataset`` of encoded records and the collator that batches them for
:meth:`GARModel.forward <gar_tool.gar.modeling.GARModel.forward>`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from gar_tool.training.encoding import IGNORE, ConversationEncoder, TrainingSample
from gar_tool.training.records import Record


class RecordDataset(Dataset):
    """Validated records, encoded on access (image decoded, regions rasterised, tiles cut)."""

    def __init__(self, records: Sequence[Record], encoder: ConversationEncoder) -> None:
        self.records = list(records)
        self.encoder = encoder

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> TrainingSample:
        r = self.records[index]
        return self.encoder.encode(r.load_image(), r.load_regions(), r.turns)


@dataclass(frozen=True)
class GARCollator:
    """Samples → the keyword arguments of ``GARModel.forward``, right-padded.

    Returns ``input_ids`` / ``attention_mask`` / ``labels`` ``(B, L)`` int64 (``pad_id``, 0 and
    :data:`IGNORE` on padding), ``pixel_values`` ``(ΣT, 3, tile, tile)`` float32 normalised,
    ``label_tiles`` ``(ΣT, tile, tile)`` uint8, ``grids`` (a list of ``(ncw, nch)``),
    ``replay_boxes`` ``(R, 4)`` float64, ``replay_sample`` and ``replay_token_ids`` ``(R,)`` int64.
    """

    pad_id: int

    def __call__(self, samples: Sequence[TrainingSample]) -> dict[str, Any]:
        n = max(len(s.inputs.input_ids) for s in samples)
        b = len(samples)
        ids = torch.full((b, n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, n), dtype=torch.long)
        labels = torch.full((b, n), IGNORE, dtype=torch.long)
        for i, s in enumerate(samples):
            k = len(s.inputs.input_ids)
            ids[i, :k] = s.inputs.input_ids
            mask[i, :k] = 1
            labels[i, :k] = s.labels
        inputs = [s.inputs for s in samples]
        return {
            "input_ids": ids, "attention_mask": mask, "labels": labels,
            "pixel_values": torch.cat([x.pixel_values for x in inputs]),
            "label_tiles": torch.cat([x.label_tiles for x in inputs]),
            "grids": [x.grid for x in inputs],
            "replay_boxes": torch.cat([x.replay_boxes for x in inputs]),
            "replay_sample": torch.cat([torch.full((len(x.replay_token_ids),), i, dtype=torch.long)
                                        for i, x in enumerate(inputs)]),
            "replay_token_ids": torch.cat([x.replay_token_ids for x in inputs]),
        }


__all__ = ["RecordDataset", "GARCollator"]
