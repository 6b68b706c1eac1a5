"""The one hub resolver (gar_tool.hub.resolve_model_dir) behind every loader — GAR, Grounding DINO,
SAM and the ``hf:`` planner — with each offline variable, and corrupt or truncated checkpoint files
(one ModelError line, never a traceback). No network: the hub client is replaced by a recorder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gar_tool import GAR
from gar_tool.errors import ModelError, ModelNotFoundError
from gar_tool.grounding import GroundingDetector, SamSegmenter
from gar_tool.hub import resolve_model_dir
from gar_agents.hf_chat import LocalHFChatModel
from grounding_fixtures import tiny_dino_dir, tiny_sam_dir  # noqa: F401  (session fixtures)


class HubRecorder:
    """Stands in for ``huggingface_hub.snapshot_download``: a cache miss every time, and a record of
    whether a download (``local_files_only=False``) was attempted."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def __call__(self, repo_id, *, allow_patterns=None, local_files_only=False, **kw):
        from huggingface_hub.errors import LocalEntryNotFoundError

        self.calls.append(local_files_only)
        if local_files_only:
            raise LocalEntryNotFoundError(f"{repo_id} is not cached")
        raise OSError("network unreachable (test)")


LOADERS = {
    "gar": (lambda name: GAR.from_pretrained(name, device="cpu"), "GAR model", "--model DIR"),
    "detector": (lambda name: GroundingDetector.from_pretrained(name, device="cpu"), "Grounding DINO detector",
                 "--detector DIR"),
    "sam": (lambda name: SamSegmenter.from_pretrained(name, device="cpu"), "SAM segmenter", "--segmenter DIR"),
    "planner": (lambda name: LocalHFChatModel(model=name, device="cpu")._load(), "planner model", "hf:DIR"),
}


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    recorder = HubRecorder()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", recorder)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return recorder


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_each_offline_variable_stops_every_loader_before_a_download(hub, monkeypatch, loader, var):
    monkeypatch.setenv(var, "1")
    load, what, option = LOADERS[loader]
    with pytest.raises(ModelNotFoundError) as info:
        load("someone/not-cached")
    msg = str(info.value)
    assert hub.calls == [True]  # the cache was asked; no download was tried
    assert "\n" not in msg and msg.startswith(f"{what} 'someone/not-cached' is not in the Hugging Face cache")
    assert "HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE" in msg and "config.json" in msg and "safetensors" in msg
    assert "hf download someone/not-cached --local-dir DIR" in msg and option in msg


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_online_but_unreachable_is_one_line_naming_the_error(hub, loader):
    load, what, option = LOADERS[loader]
    with pytest.raises(ModelNotFoundError) as info:
        load("someone/not-cached")
    msg = str(info.value)
    assert hub.calls == [True, False]  # cache first, then one download attempt
    assert "could not be downloaded (OSError: network unreachable (test))" in msg and option in msg
    assert "\n" not in msg


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_missing_local_directory(hub, tmp_path, loader):
    load, what, _ = LOADERS[loader]
    with pytest.raises(ModelNotFoundError, match=f"^{what} .*no such checkpoint directory"):
        load(str(tmp_path / "nowhere"))
    assert hub.calls == []


def test_directory_listing_names_every_missing_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"lacks tokenizer.json, model.safetensors or "
                                                 r"model.safetensors.index.json$"):
        resolve_model_dir(tmp_path, ["config.json", "tokenizer.json"], what="thing")


# ------------------------------------------------------------------ corrupt / truncated files
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


CORRUPTIONS = {
    "truncated weights": lambda d: _truncate(d / "model.safetensors"),
    "garbage weights": lambda d: (d / "model.safetensors").write_bytes(b"\x00garbage" * 64),
    "empty weights": lambda d: (d / "model.safetensors").write_bytes(b""),
    "weights are a pickle": lambda d: (d / "model.safetensors").write_bytes(b"\x80\x04\x95" + b"x" * 64),
    "config not JSON": lambda d: (d / "config.json").write_text("{not json"),
    "config a list": lambda d: (d / "config.json").write_text("[1, 2]"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
@pytest.mark.parametrize("loader", ["gar", "detector", "sam"])
def test_corrupt_checkpoint_files_are_one_model_error(tmp_path, kind, loader, tiny_ckpt, tiny_dino_dir,  # noqa: F811
                                                      tiny_sam_dir):  # noqa: F811
    source = {"gar": tiny_ckpt, "detector": tiny_dino_dir, "sam": tiny_sam_dir}[loader]
    broken = _copy(source, tmp_path / "ckpt")
    CORRUPTIONS[kind](broken)
    load, what, _ = LOADERS[loader]
    with pytest.raises(ModelError) as info:
        load(str(broken))
    msg = str(info.value)
    assert "\n" not in msg and str(broken) in msg


@pytest.mark.parametrize("name", ["tokenizer.json", "preprocessor_config.json", "processor_config.json",
                                  "tokenizer_config.json"])
def test_corrupt_gar_side_files(tmp_path, tiny_ckpt, name):
    broken = _copy(tiny_ckpt, tmp_path / "ckpt")
    (broken / name).write_text('{"truncated": ')
    with pytest.raises(ModelError) as info:
        GAR.from_pretrained(str(broken), device="cpu")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["tokenizer.json", "preprocessor_config.json", "tokenizer_config.json"])
def test_corrupt_detector_side_files(tmp_path, tiny_dino_dir, name):  # noqa: F811
    broken = _copy(tiny_dino_dir, tmp_path / "ckpt")
    (broken / name).write_bytes(b'{"truncated": \xff\xfe')
    with pytest.raises(ModelError) as info:
        GroundingDetector.from_pretrained(str(broken), device="cpu")
    assert "\n" not in str(info.value)


def test_wrong_shapes_in_weights_are_a_model_error(tmp_path, tiny_ckpt):
    import torch
    from safetensors.torch import load_file, save_file

    broken = _copy(tiny_ckpt, tmp_path / "ckpt")
    tensors = load_file(str(broken / "model.safetensors"))
    key = next(k for k in tensors if k.endswith("embed_tokens.weight"))
    tensors[key] = torch.zeros(3, 5)
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelError, match="cannot be loaded"):
        GAR.from_pretrained(str(broken), device="cpu")


def test_cli_exit_code_for_a_truncated_checkpoint(tmp_path, tiny_ckpt, capsys):
    from gar_tool.cli import main
    from tools_support import rgb, write_png

    broken = _copy(tiny_ckpt, tmp_path / "ckpt")
    _truncate(broken / "model.safetensors", 0.9)
    image = write_png(tmp_path / "a.png", rgb(40, 50))
    code = main(["describe", str(image), "--region", "box:1,1,20,20", "--model", str(broken), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "corrupt or truncated" in err and "Traceback" not in err
    assert json.dumps(str(broken))[1:-1] in err
