"""RemoteGAR: a ``gar serve`` server's GAR as a GARBackend — the same answers as the model in
process, the server's token limit, local validation, and a local toolkit over a remote GAR."""

from __future__ import annotations

import numpy as np
import pytest

from gar_tool import GAR
from gar_tool.errors import InputError, PromptError
from gar_tool.gar.engine import CacheConfig
from gar_tool.gar.protocol import DecodeOptions, GARBackend
from gar_tool.integrations.http import GARClient, RemoteGAR
from gar_tool.integrations.http.server import create_app
from gar_tool.tools import GARToolkit, ImageInputConfig, ToolInputError
from server_support import LiveServer, tiny_toolkit

IMG = (np.random.RandomState(8).rand(90, 120, 3) * 255).astype(np.uint8)
A, B = {"box": [5, 5, 50, 60]}, {"box": [60, 20, 115, 85]}


@pytest.fixture(scope="module")
def server(tiny_gar):
    kit = tiny_toolkit(tiny_gar, None, inputs=ImageInputConfig(allowed_roots=[]), max_new_tokens=4)
    with LiveServer(create_app(kit)) as srv:
        yield srv, kit
    kit.gar.close()


@pytest.fixture()
def remote(server):
    with GARClient(server[0].url, timeout=120) as client:
        yield client.gar


def test_remote_gar_is_a_backend_with_the_servers_slots(remote, tiny_gar):
    assert isinstance(remote, RemoteGAR) and isinstance(remote, GARBackend)
    assert remote.prompt_slots == tiny_gar.prompt_slots


def test_same_answers_as_in_process(remote, tiny_gar):
    local = GAR(tiny_gar.model, tiny_gar.processor, cache=CacheConfig.disabled())
    want = local.describe(IMG, A, max_new_tokens=3)
    got = remote.describe(IMG, A, max_new_tokens=3)
    assert (got.text, got.finish_reason) == (want.text, want.finish_reason)
    assert got.token_ids == [] and got.prompt_tokens == 0  # not reported over HTTP
    qs = ["Is <Prompt0> left of <Prompt1>?", "Which is bigger, <Prompt0> or <Prompt1>?", "<Prompt1> or <Prompt0>?"]
    reqs = [remote.request(IMG, [A, B], q) for q in qs]
    answers = remote.answer(reqs, DecodeOptions(max_new_tokens=4))  # sent concurrently
    expected = local.relate([IMG] * 3, [[A, B]] * 3, qs, max_new_tokens=4)
    assert [a.text for a in answers] == [e.text for e in expected]


def test_the_servers_token_limit_and_decoding_rules(remote):
    with pytest.raises(ToolInputError, match="between 1 and this server's limit of 4, got 9"):
        remote.describe(IMG, A, max_new_tokens=9)
    with pytest.raises(InputError, match="only max_new_tokens"):
        remote.describe(IMG, A, do_sample=True)


@pytest.mark.parametrize("regions, question, message", [
    ([A, B], "What is <Prompt0>?", "must name each of 2"),
    ([A], "no reference", "names no region"),
    ([A, B], None, "exactly one region"),
    ([A] * 6, " ".join(f"<Prompt{i}>" for i in range(6)), "5 region slots"),
])
def test_requests_are_validated_locally(remote, regions, question, message):
    with pytest.raises(PromptError, match=message):
        remote.request(IMG, regions, question)


def test_a_local_toolkit_over_the_remote_gar(remote, tiny_gar):
    kit = GARToolkit(remote, inputs=ImageInputConfig(allowed_roots=[]), max_new_tokens=3)
    out = kit.call("gar_describe", {"image": _data_uri(), "region": A}).artifact
    local = GAR(tiny_gar.model, tiny_gar.processor).describe(IMG, A, max_new_tokens=3)
    assert out.description == local.text


def _data_uri() -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(IMG).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
