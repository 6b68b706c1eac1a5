"""The Ray integration's parts that need no Ray cluster: the Serve config file, what crosses the
wire, the shared-store and GAR proxies (over in-process stand-ins of the deployments), manifests,
the in-process ``gar batch`` loop (records, resume, planner) and the CLI wiring."""

from __future__ import annotations

import inspect
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage

from batch_support import write_manifest
from gar_tool import GAR
from gar_tool.cli import main
from gar_tool.errors import InputError, PromptError
from gar_tool.gar.protocol import DecodeOptions
from gar_tool.integrations.ray.batch import BatchJob, read_output, run_batch
from gar_tool.integrations.ray.config import app_config, load_serve_file
from gar_tool.integrations.ray.items import BatchSettings
from gar_tool.integrations.ray.manifest import read_manifest
from gar_tool.integrations.ray.proxies import ServeGAR, SharedStore
from gar_tool.integrations.ray.wire import Outcome, capture, portable, region_from_wire, region_to_wire
from gar_tool.regions.region import Region
from gar_tool.tools import GARToolkit, ImageInputConfig, SessionStore
from gar_tool.tools.errors import ToolInputError
from planner_support import ScriptedChatModel, call
from tools_support import b64, png_bytes, rgb

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- config
def test_example_serve_config_loads():
    f = load_serve_file(REPO / "examples" / "ray_serve_config.yaml")
    assert f.args.models == {"gar-1b": "HaochenWang/GAR-1B", "gar-8b": "HaochenWang/GAR-8B"}
    assert f.args.default == "gar-1b" and f.args.segmenter == "sam" and f.route_prefix == "/"
    assert f.deployments["GARModels"]["ray_actor_options"]["num_gpus"] == 1
    assert f.deployments["GARModels"]["autoscaling_config"]["max_replicas"] == 8
    assert f.deployments["SessionStore"]["num_replicas"] == 1


@pytest.mark.parametrize("args, message", [
    ({"models": {}}, "at least one GAR model"),
    ({"models": {"a b": "x"}}, "letters, digits"),
    ({"models": {"a": "x"}, "default_model": "b"}, "default_model 'b' is not one of models"),
    ({"modles": {"a": "x"}}, "modles: Extra inputs are not permitted"),
    ({"max_batch": 0}, "max_batch: Input should be greater than or equal to 1"),
])
def test_bad_app_args_are_input_errors(args, message):
    with pytest.raises(InputError, match=message):
        app_config(args)


def test_serve_file_errors(tmp_path):
    bad = tmp_path / "c.yaml"
    app = {"import_path": "gar_tool.integrations.ray.serve_app:build", "args": {"models": {"a": "x"}}}
    for deployments, message in [([{"name": "Nope"}], "expected one of GARModels"),
                                 ([{"name": "SessionStore", "num_replicas": 2}], "exactly one replica"),
                                 ([{"name": "Front", "replicas": 2}], "unknown option")]:
        bad.write_text(json.dumps({"applications": [{**app, "deployments": deployments}]}))
        with pytest.raises(InputError, match=message):
            load_serve_file(bad)
    bad.write_text("applications: [")
    with pytest.raises(InputError, match="not valid YAML"):
        load_serve_file(bad)


# ------------------------------------------------------------------------------- wire
def test_regions_round_trip_exactly():
    mask = np.zeros((30, 40), bool)
    mask[3:9, 5:31] = True
    mask[20, 39] = True
    r = Region(mask, label="a cup", score=0.8125, source="sam", id="r4")
    back = region_from_wire(pickle.loads(pickle.dumps(region_to_wire(r))))
    assert np.array_equal(back.mask, mask) and back.box == r.box
    assert (back.label, back.score, back.source, back.id) == ("a cup", 0.8125, "sam", "r4")


def test_outcomes_reraise_the_original_error():
    out = pickle.loads(pickle.dumps(capture(lambda: (_ for _ in ()).throw(PromptError("no <Prompt3> here")))))
    with pytest.raises(PromptError, match="^no <Prompt3> here$"):
        out.unwrap()
    assert pickle.loads(pickle.dumps(capture(lambda: 7))).unwrap() == 7

    class Local(Exception):  # cannot be pickled by reference
        pass

    p = portable(Local("boom"))
    assert type(p) is RuntimeError and str(p) == "Local: boom"


# ------------------------------------------------------------------------------- proxies
class _Response:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _StoreHandle:
    """The SessionStore deployment's ``call``, in process."""

    def __init__(self):
        store = SessionStore()

        class Method:
            def remote(self, name, args, kwargs):
                return _Response(pickle.loads(pickle.dumps(capture(getattr(store, name), *args, **kwargs))))

        self.call = Method()


def test_shared_store_forwards_every_public_method():
    public = {n for n, v in inspect.getmembers(SessionStore, inspect.isfunction) if not n.startswith("_")}
    assert public <= set(SharedStore.__dict__), public - set(SharedStore.__dict__)
    from gar_tool.integrations.ray.proxies import STORE_METHODS

    assert public == set(STORE_METHODS)


def test_shared_store_behaves_like_a_local_store():
    local, shared = SessionStore(), SharedStore(_StoreHandle())
    from PIL import Image

    img = Image.fromarray(rgb(20, 30, 1))
    for s in (local, shared):
        entry = s.put_image(img)
        r = s.put_region(entry.image_id, Region.from_box([1, 1, 9, 9], (20, 30)))
        assert r.id == "r1" and s.get_region("r1", entry.image_id).box == r.box
        assert s.stats()["regions"] == 1 and s.image_of("r1") == entry.image_id
    for s in (local, shared):
        with pytest.raises(ToolInputError) as err:
            s.get_region("r7")
        assert "unknown in this session" in str(err.value)


class _GARHandle:
    """The GARModels deployment's ``info`` / ``answer`` (validate, then batch), in process."""

    def __init__(self, gar):
        from gar_tool.integrations.ray.wire import answer_groups
        from gar_tool.integrations.ray.wire import regions_from_wire

        outer = self

        class Answer:
            def remote(self, wire, opts):
                wire = pickle.loads(pickle.dumps(wire))
                try:
                    req = gar.request(wire["image"], regions_from_wire(wire["regions"]), wire["question"],
                                      instruction=wire["instruction"], compat=wire["compat"])
                except Exception as exc:
                    return _Response(Outcome(error=exc))
                outer.batches.append(1)
                return _Response(answer_groups(gar, [(req, opts)])[0][0])

        class Info:
            def remote(self):
                return _Response(Outcome(value={"prompt_slots": gar.prompt_slots}))

        self.answer, self.info, self.batches = Answer(), Info(), []

    def options(self, **kw):
        return self


def test_serve_gar_answers_as_gar_does(tiny_gar):
    remote = ServeGAR(_GARHandle(tiny_gar), "a")
    img = rgb(60, 80, 2)
    regions = [{"box": [2, 2, 40, 40]}, {"polygon": [[50, 5], [78, 10], [60, 50]]}]
    q = "Is <Prompt0> above <Prompt1>?"
    assert remote.prompt_slots == 5
    got = remote.relate(img, regions, q, max_new_tokens=4)
    assert got == tiny_gar.relate(img, regions, q, max_new_tokens=4)
    with pytest.raises(PromptError) as err:  # checked by the "deployment", raised here, same message
        remote.relate(img, regions, "What is <Prompt0>?", max_new_tokens=2)
    with pytest.raises(PromptError) as direct:
        tiny_gar.relate(img, regions, "What is <Prompt0>?", max_new_tokens=2)
    assert str(err.value) == str(direct.value)
    kit = GARToolkit(remote, inputs=None)
    ref = GARToolkit(tiny_gar, max_new_tokens=256)
    args = {"image": "data:image/png;base64," + b64(png_bytes(img)), "region": {"box": [2, 2, 40, 40]}}
    assert kit.describe(args).to_dict() == ref.describe(args).to_dict()


# ------------------------------------------------------------------------------- manifests
def test_manifest_forms_and_errors(tmp_path):
    m = write_manifest(tmp_path / "imgs", n=4)
    items, root = read_manifest(m)
    assert [it.id for it in items] == ["item-0", "item-1", "item-2", "item-3", "missing", "outside"]
    assert items[1].phrases == ["a dog", "a cat"] and root == m.parent.resolve()
    folder, _ = read_manifest(m.parent, question="What is <Prompt0>?", phrases="a dog")
    assert [it.id for it in folder] == [f"im{i:02d}.png" for i in range(4)] and folder[0].phrases == ["a dog"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"image": ["im00.png"], "regions": [json.dumps([{"box": [1, 1, 9, 9]}])]}),
                   tmp_path / "imgs" / "m.parquet")
    [row], _ = read_manifest(tmp_path / "imgs" / "m.parquet", question="Q <Prompt0>")
    assert (row.id, row.regions, row.question) == ("row-1", [{"box": [1, 1, 9, 9]}], "Q <Prompt0>")
    bad = tmp_path / "bad.jsonl"
    for text, message in [('{"image": "a.png"}\n{"image": "b.png", "id": "line-1"}\n', "line 2: item id 'line-1'"),
                          ('{"image": "a.png"}\n{oops\n', "line 2: not valid JSON"),
                          ('{"image": "a.png", "qestion": "x"}\n', "line 1: qestion: Extra inputs"),
                          ("\n", "has no items")]:
        bad.write_text(text)
        with pytest.raises(InputError, match=message):
            read_manifest(bad)


# ------------------------------------------------------------------------------- in-process batch
@pytest.fixture(scope="module")
def small_job(tmp_path_factory, tiny_ckpt):
    m = write_manifest(tmp_path_factory.mktemp("b") / "imgs", n=6)
    lines = [json.loads(x) for x in m.read_text().splitlines() if "phrases" not in x]  # no detector here
    m.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return dict(manifest=str(m), model=str(tiny_ckpt), device="cpu", dtype="float32",
                settings=BatchSettings(max_new_tokens=3))


def test_records_are_the_tools_answers(small_job, tiny_gar, tmp_path):
    out = tmp_path / "a.jsonl"
    stats = run_batch(BatchJob(out=str(out), **small_job), use_ray=False, show_progress=False)
    recs = {r["id"]: r for r in read_output(out)}
    assert stats.new == 6 and stats.failed == 2
    kit = GARToolkit(tiny_gar, max_new_tokens=3, inputs=ImageInputConfig(allowed_roots=[Path(small_job["manifest"]).parent]))
    rel = kit.relate({"image": "im00.png", "regions": [{"box": [4, 4, 40, 40]}, {"box": [30, 18, 76, 54]}],
                      "question": "Is <Prompt0> left of <Prompt1>?"}).artifact
    assert recs["item-0"]["answer"] == rel.answer_with_ids
    assert [r["rle"] for r in recs["item-0"]["evidence"]["regions"]] == [r.rle.model_dump() for r in rel.regions]
    desc = kit.describe({"image": "im02.png", "region": {"box": [8, 8, 48, 50]}}).artifact
    assert recs["item-2"]["answer"] == desc.description and recs["item-2"]["answers"][0]["region_ids"] == ["r1"]
    assert recs["outside"]["error"]["type"] == "invalid_input" and "regions[0]" in recs["outside"]["error"]["message"]


def test_resume_skips_done_items_and_refuses_other_settings(small_job, tmp_path):
    out = tmp_path / "r.jsonl"
    full = tmp_path / "full.jsonl"
    run_batch(BatchJob(out=str(full), **small_job), use_ray=False, show_progress=False)

    class Stop(Exception):
        pass

    def stop_after_3(rec):
        if len(stop_after_3.seen) == 2:
            raise Stop()
        stop_after_3.seen.append(rec["id"])

    stop_after_3.seen = []
    with pytest.raises(Stop):
        run_batch(BatchJob(out=str(out), **small_job), use_ray=False, show_progress=False, on_record=stop_after_3)
    assert not out.exists()  # the output appears only when every item has a record
    stats = run_batch(BatchJob(out=str(out), **small_job), use_ray=False, show_progress=False)
    assert (stats.resumed, stats.new) == (3, 3)
    assert read_output(out) == read_output(full)
    other = {**small_job, "settings": BatchSettings(max_new_tokens=4)}
    with pytest.raises(InputError, match="belongs to another run"):
        run_batch(BatchJob(out=str(out), **other), use_ray=False, show_progress=False)


def test_planner_answers_with_evidence(small_job, tmp_path):
    from gar_agents import Planner

    def describe_then_answer(msgs, bound):
        if bound and not any(getattr(m, "type", "") == "tool" for m in msgs):
            return AIMessage("", tool_calls=[call("gar_describe", image="ignored", region="r1")])
        return AIMessage("r1 is a random texture.")

    def make(kit, spec, max_steps, base_url):
        return Planner(kit, ScriptedChatModel(steps=[describe_then_answer]), max_steps=max_steps)

    job = {**small_job, "settings": BatchSettings(max_new_tokens=3, planner="scripted")}
    out = tmp_path / "p.jsonl"
    run_batch(BatchJob(out=str(out), planner_class=make, **job), use_ray=False, show_progress=False)
    recs = {r["id"]: r for r in read_output(out)}
    assert recs["item-0"]["answer"] == "r1 is a random texture." and recs["item-0"]["planner"]["cited"] == ["r1"]
    assert recs["item-0"]["evidence"]["gar"][0]["answer"]  # the describe call the planner made
    assert recs["item-2"]["error"]["message"] == "the planner needs a question for every item"


# ------------------------------------------------------------------------------- CLI
def test_gar_batch_cli(small_job, tmp_path, capsys):
    folder = Path(small_job["manifest"]).parent
    out = tmp_path / "cli.jsonl"
    code = main(["batch", str(folder), "--question", "Where is <Prompt0>?", "--no-ray", "--no-progress",
                 "--model", small_job["model"], "--device", "cpu", "--max-new-tokens", "2", "--out", str(out)])
    assert code == 0 and "6 of 6 items answered" in capsys.readouterr().out
    recs = read_output(out)
    assert len(recs) == 6 and all(r["error"]["message"].startswith("the item has no regions") for r in recs)
    assert main(["batch", str(tmp_path / "none.jsonl"), "--out", str(out), "--no-ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest not found" in err


def test_gar_serve_ray_bad_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "serve.yaml"
    bad.write_text("applications:\n- import_path: gar_tool.integrations.ray.serve_app:build\n  args: {models: {}}\n")
    assert main(["serve", "--ray-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least one GAR model" in err
