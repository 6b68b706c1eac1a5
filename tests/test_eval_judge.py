"""The LLM judge: prompt files, the OpenAI-compatible client, and re-judging GAR-Bench captions
against a local stub server (127.0.0.1 only)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re

import httpx
import numpy as np
import pytest
from eval_support import GAR_BENCH, OFFICIAL, StubJudge, load_json, write_image
from PIL import Image

import gar_tool.cli as cli
from gar_tool.errors import InputError
from gar_tool.evaluation.judge import ChatJudge, JudgeError, load_prompt, parse_judge_spec, parse_prompt_file
from gar_tool.evaluation.judge_images import focal_crop_bounds

# sha256 of the prompt texts in GAR's scripts (commit e479816): eval_simple.py / eval_detailed.py
# `prompt_ann`, DLC-Bench eval_gpt_with_image.py `prompt_eval`. The files must hold them verbatim.
ORIGINAL_PROMPT_SHA256 = {
    "judge_gar_bench_caption_simple": "c40595611c10b3589bcdc49dba296027a71f22e80d649941f357f86d1c4a7bf3",
    "judge_gar_bench_caption_detailed": "8bc655d2e4508b0c2da18c8b8ee6ea2c5df90a2834dcb0c6a37ffa33e3f9e536",
    "judge_dlc_bench": "123d16e4f4367739414018352356720a252f2da27760f86f086f0f8146d33df9",
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def eval_cli(monkeypatch):
    """``gar`` with only the eval command registered (other commands are not needed here)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("eval_cmd",))
    return cli.main


# ------------------------------------------------------------------------------------ prompts
@pytest.mark.parametrize("name, sha", sorted(ORIGINAL_PROMPT_SHA256.items()))
def test_prompt_files_hold_the_original_text(name, sha):
    tpl = load_prompt(name)
    assert hashlib.sha256(tpl.text.encode()).hexdigest() == sha
    assert "source" in tpl.meta and tpl.variables


def test_prompt_variables_are_declared_and_rendered():
    tpl = load_prompt("judge_gar_bench_caption_simple")
    assert tpl.variables == ("answer", "model_output")
    text = tpl.render(answer="a {brace}", model_output="<Prompt1> is left of <Prompt0>.")
    assert '- Ground truth: "a {brace}"' in text and '"<Prompt1> is left of <Prompt0>."' in text
    with pytest.raises(InputError, match="takes variables"):
        tpl.render(answer="x")


@pytest.mark.parametrize("raw, message", [
    ("no header\n{x}", "must start with a '---' header"),
    ("---\nvariables: x\n{x}", "not closed"),
    ("---\nvariables: x\n---\n{x} {y}", "declares variables"),
])
def test_malformed_prompt_files(raw, message):
    with pytest.raises(InputError, match=message):
        parse_prompt_file(raw, "t")


# ------------------------------------------------------------------------------------- client
@pytest.mark.parametrize("spec, expected", [
    ("openai:gpt-4o-2024-11-20", ("openai", "gpt-4o-2024-11-20")),
    ("openai:llama3.1-8b", ("openai", "llama3.1-8b")),
    ("gpt-4o", InputError), ("openai:", InputError), ("azure:gpt-4o", InputError),
])
def test_parse_judge_spec(spec, expected):
    if expected is InputError:
        with pytest.raises(InputError):
            parse_judge_spec(spec)
    else:
        s = parse_judge_spec(spec)
        assert (s.provider, s.model) == expected


def _completion(content):
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})


def test_client_request_and_reply():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _completion("True")

    with ChatJudge("judge-x", "http://judge.test/v1/", "sk-1", transport=httpx.MockTransport(handler)) as j:
        assert j.complete([{"type": "text", "text": "hi"}], max_tokens=7) == "True"
    (req,) = seen
    assert str(req.url) == "http://judge.test/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-1"
    body = json.loads(req.content)
    assert body["model"] == "judge-x" and body["max_tokens"] == 7
    assert (body["temperature"], body["top_p"], body["frequency_penalty"], body["presence_penalty"]) == (0.0, 1, 0, 0)
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_client_retries_server_errors_with_backoff():
    statuses = iter([503, 429, 200])
    delays = []

    def handler(request):
        code = next(statuses)
        return _completion("ok") if code == 200 else httpx.Response(code, text="busy")

    j = ChatJudge("m", "http://judge.test/v1", transport=httpx.MockTransport(handler), sleep=delays.append)
    assert j.complete("q") == "ok"
    assert delays == [1.0, 2.0]
    assert "authorization" not in {k.lower() for k in j._client.headers}  # no key → no header


@pytest.mark.parametrize("response, message", [
    (httpx.Response(401, text="bad key"), "HTTP 401"),
    (httpx.Response(500, text="boom"), "HTTP 500"),
    (httpx.Response(200, text="<html>"), "expected an OpenAI chat completion"),
    (httpx.Response(200, json={"choices": []}), "expected an OpenAI chat completion"),
])
def test_client_failures(response, message):
    calls = []

    def handler(request):
        calls.append(1)
        return response

    j = ChatJudge("m", "http://judge.test/v1", transport=httpx.MockTransport(handler), max_retries=1,
                  sleep=lambda s: None)
    with pytest.raises(JudgeError, match=message):
        j.complete("q")
    assert len(calls) == (2 if response.status_code == 500 else 1)


def test_client_call_budget_and_empty_content():
    j = ChatJudge("m", "http://judge.test/v1", transport=httpx.MockTransport(lambda r: _completion(None)),
                  max_calls=2)
    assert j.complete("a") == "" and j.complete("b") == ""
    with pytest.raises(JudgeError, match="budget of 2"):
        j.complete("c")


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://x/v1", "not a url"])
def test_client_rejects_bad_base_urls(url):
    with pytest.raises(InputError, match="http"):
        ChatJudge("m", url)


# -------------------------------------------------------------------------------- focal crops
@pytest.mark.parametrize("rows, cols, expected", [
    ((90, 100), (140, 150), ((11, 179), (61, 229))),   # small object: box grown to 56, context 56 each side
    ((0, 10), (0, 10), ((0, 89), (0, 89))),             # at the corner: clipped, int() truncates toward 0
    ((20, 180), (10, 290), ((0, 200), (0, 300))),        # large object: the whole image
])
def test_focal_crop_bounds(rows, cols, expected):
    mask = np.zeros((200, 300), dtype=bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    r, c = focal_crop_bounds(mask)
    assert ((r.start, r.stop), (c.start, c.stop)) == expected


# ------------------------------------------------------------------- re-judging via the stub
_GT = re.compile(r'- Ground truth: "(.*)"\n- Model Output: "(.*)"\n', re.DOTALL)


def exact_match_judge(req) -> str:
    """Scripted verdict: "True" iff the model output equals the ground truth."""
    m = _GT.search(req.text)
    return "True" if m and m.group(1) == m.group(2) else "False"


def test_rejudge_simple_captions_text_only(tmp_path, monkeypatch, eval_cli, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    preds = load_json(OFFICIAL / "gar_1b_simple_eval.json")
    expected_true = sum(p["model_output"] == p["answer"] for p in preds)
    out = tmp_path / "simple_eval.json"
    with StubJudge(exact_match_judge) as stub:
        rc = eval_cli(["eval", "score", "--benchmark", "gar-bench-caption-simple", "--pred",
                       str(OFFICIAL / "gar_1b_simple_eval.json"), "--judge", "openai:stub-judge",
                       "--judge-base-url", stub.base_url, "--judge-text-only", "--out", str(out),
                       "--json", "--no-progress"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"]["correct"] == expected_true
    assert result["overall"]["total"] == len(preds)
    assert len(stub.requests) == len(preds)
    tpl = load_prompt("judge_gar_bench_caption_simple")
    for req, item in zip(stub.requests, preds):
        assert req.path == "/v1/chat/completions"
        assert req.headers["authorization"] == "Bearer sk-test"
        assert req.body["model"] == "stub-judge" and req.body["temperature"] == 0
        assert req.body["max_tokens"] == 1000
        assert req.body["messages"][0]["content"] == tpl.render(answer=item["answer"],
                                                                model_output=item["model_output"])
    judged = load_json(out)
    assert [j["image"] for j in judged] == [p["image"] for p in preds]
    assert sum(j["eval_result"] == "True" for j in judged) == expected_true


def test_rejudging_resumes_after_an_interruption(tmp_path, monkeypatch, eval_cli, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pred = str(OFFICIAL / "gar_1b_simple_eval.json")
    out = tmp_path / "simple_eval.json"
    with StubJudge(exact_match_judge) as stub:
        args = ["eval", "score", "--benchmark", "gar-bench-caption-simple", "--pred", pred, "--judge",
                "openai:stub", "--judge-base-url", stub.base_url, "--judge-text-only", "--out", str(out),
                "--no-progress", "--json"]
        assert eval_cli(args + ["--judge-max-calls", "40"]) == 1  # budget used up → failure exit
        assert "budget of 40" in capsys.readouterr().err
        assert len(load_json(out)) == 40  # a valid partial file
        assert eval_cli(args) == 0
    tpl = load_prompt("judge_gar_bench_caption_simple")
    expected = [tpl.render(answer=p["answer"], model_output=p["model_output"]) for p in load_json(OFFICIAL / "gar_1b_simple_eval.json")]
    asked = [r.body["messages"][0]["content"] for r in stub.requests]
    assert asked == expected  # each item asked once, in order, across the two runs
    assert "authorization" not in stub.requests[0].headers
    assert json.loads(capsys.readouterr().out)["overall"]["total"] == 97
    assert len(load_json(out)) == 97


def test_rejudge_detailed_with_images(tmp_path, monkeypatch, eval_cli, capsys):
    """The judge sees the image, then per region its focal crop and cropped mask, then the prompt."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    data = tmp_path / "gar-bench"
    (data / "annotations").mkdir(parents=True)
    (data / "annotations" / "GAR-Bench-Caption-Detailed.json").symlink_to(
        GAR_BENCH / "annotations" / "GAR-Bench-Caption-Detailed.json")
    items = load_json(OFFICIAL / "gar_1b_detailed_eval.json")[:3]
    for i, item in enumerate(items):
        h, w = item["mask_rles"][0]["size"]
        write_image(data / item["image"], h, w, seed=i)
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{k: v for k, v in it.items() if k != "eval_result"} for it in items]))
    with StubJudge(lambda req: "True") as stub:
        rc = eval_cli(["eval", "score", "--benchmark", "gar-bench-caption-detailed", "--pred", str(pred),
                       "--data", str(data), "--allow-partial", "--judge", "openai:stub",
                       "--judge-base-url", stub.base_url, "--no-progress", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["overall"]["correct"] == 3
    tpl = load_prompt("judge_gar_bench_caption_detailed")
    for req, item in zip(stub.requests, items):
        parts = req.parts
        n = len(item["mask_rles"])
        assert [p["type"] for p in parts] == ["text", "image_url"] + ["text", "image_url"] * (2 * n) + ["text"]
        texts = [p["text"] for p in parts if p["type"] == "text"]
        assert texts[0] == "\n1. The original image:\n"
        assert texts[1:-1] == [t for k in range(n) for t in (f"\n{2 * k + 2}. <Prompt{k}>:\n",
                                                           f"\n{2 * k + 3}. The mask of <Prompt{k}>:\n")]
        assert texts[-1] == tpl.render(**{v: item[v] for v in tpl.variables})
        images = [_decode(p["image_url"]["url"]) for p in parts if p["type"] == "image_url"]
        assert images[0].size == (item["mask_rles"][0]["size"][1], item["mask_rles"][0]["size"][0])
        for crop, mask in zip(images[1::2], images[2::2]):
            m = np.asarray(mask)
            assert crop.size == mask.size and set(np.unique(m)) <= {0, 255} and m.any()


def _decode(url: str) -> Image.Image:
    head, b64 = url.split(",", 1)
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_judging_needs_images_or_text_only(eval_cli, capsys):
    rc = eval_cli(["eval", "score", "--benchmark", "gar-bench-caption-simple", "--pred",
                   str(OFFICIAL / "gar_1b_simple_eval.json"), "--judge", "openai:m",
                   "--judge-base-url", "http://127.0.0.1:9/v1"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "--data" in err and "--judge-text-only" in err and len(err.splitlines()) == 1


def test_logged_verdicts_are_reused_only_for_the_same_output(tmp_path, monkeypatch, eval_cli, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    preds = load_json(OFFICIAL / "gar_1b_simple_eval.json")
    out = tmp_path / "judged.json"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps([dict(p, model_output="changed") if i == 3 else p for i, p in enumerate(preds)]))
    with StubJudge(exact_match_judge) as stub:
        base = ["eval", "score", "--benchmark", "gar-bench-caption-simple", "--judge", "openai:stub",
                "--judge-base-url", stub.base_url, "--judge-text-only", "--out", str(out), "--no-progress"]
        assert eval_cli(base + ["--pred", str(OFFICIAL / "gar_1b_simple_eval.json")]) == 0
        assert eval_cli(base + ["--pred", str(edited)]) == 0
    capsys.readouterr()
    assert len(stub.requests) == len(preds) + 1  # only the edited item was judged again
    assert '- Model Output: "changed"' in stub.requests[-1].text
    assert load_json(out)[3]["model_output"] == "changed"
