// The gar-agent page: one image, its regions, GAR questions and the planner, over the HTTP API.
import { ApiError, getBlob, getJSON, postEvents, postJSON, uploadFile } from "./api.js";
import { decodeRle } from "./rle.js";
import { View, css, maskLayer, regionColor } from "./view.js";
import { download, richText as richTextOf } from "./ui.js";
import { eventRegions, outcome, renderEvent, resetSteps } from "./steps.js";

const $ = (id) => document.getElementById(id);

const state = {
  tools: [], models: {}, planner: { available: false, name: null },
  image: null,                 // {id, width, height}
  imageUrl: null,              // blob: URL of the image shown
  regions: new Map(),          // id → {id, label, score, box, area, source, rle, mask, layer, index}
  selected: [],                // region ids; position k is <Prompt k>
  highlight: null,             // Set of cited ids while an answer is shown
  pending: null,               // {prompt, region, layer} while a box / points are being drawn
  points: [],                  // [{xy: [x, y], label}] of the pending points prompt
  previews: 0,                 // previews asked for (only the latest answer is shown)
  last: null,                  // {json, overlay, name} of the latest result (downloads)
  run: null,                   // AbortController of a running planner question
};

const view = new View($("canvas"), { onBox, onPoint, onPick });

// ---------------------------------------------------------------- messages
export function showError(err) {
  const text = err instanceof ApiError || err instanceof Error ? err.message : String(err);
  $("error-text").textContent = text;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

/** Run an action; a failure becomes the readable message at the top, and the page goes on. */
async function guarded(button, action) {
  if (button) button.disabled = true;
  try {
    clearError();
    await action();
  } catch (err) {
    if (err.name !== "AbortError") showError(err);
  } finally {
    if (button) button.disabled = false;
  }
}

function needImage() {
  if (!state.image) throw new Error("Upload or open an image first.");
  return state.image.id;
}

// ---------------------------------------------------------------- status
async function loadStatus() {
  try {
    const health = await getJSON("/health");
    state.tools = health.tools;
    state.models = health.models || {};
    try {
      state.planner = await getJSON("/v1/planner");
    } catch (err) {
      state.planner = { available: false, name: null };
    }
  } catch (err) {
    $("status").textContent = "The server does not answer.";
    showError(err);
    return;
  }
  const m = state.models;
  const part = (name, value) => `${name}: ${value ? value : "not loaded"}`;
  $("status").textContent = [part("GAR", m.gar), part("detector", m.detector), part("segmenter", m.segmenter),
    part("planner", state.planner.available ? state.planner.name || "yes" : null)].join(" · ");
  hint();
}

function hint() {
  const mode = document.querySelector("#modes [aria-pressed=true]").dataset.mode;
  const sam = state.models.segmenter ? "the segmenter turns it into an object mask"
    : "no segmenter is loaded, so it stays a rectangle / small discs";
  $("hint").textContent = !state.image ? "" : {
    box: `Drag a box around an object; ${sam}.`,
    points: `Click on the object (background points: tick the box, shift-click or right-click); ${sam}.`,
    select: "Click a region to select it, click again to unselect.",
  }[mode];
}

// ---------------------------------------------------------------- image
async function setImage(info) {
  const blob = await getBlob(`/v1/images/${info.image_id}`);  // the pixels as the tools see them
  const img = new Image();
  img.src = URL.createObjectURL(blob);
  try {
    await img.decode();
  } catch (e) {
    throw new Error(`the browser cannot show the image ${info.image_id} (${e.message})`);
  }
  if (state.run) state.run.abort();  // a planner run about the previous image
  if (!state.image || state.image.id !== info.image_id) {
    state.regions.clear();
    state.selected = [];
    state.highlight = null;
    resetSteps($("plan-steps"));
    $("plan-answer").textContent = "";
    $("gar-answer").textContent = "";
  }
  state.image = { id: info.image_id, width: info.width, height: info.height };
  clearPending();
  $("placeholder").hidden = true;
  $("box-form").hidden = false;
  view.setImage(img);
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = img.src;
  renderRegions();
  hint();
}

async function openFile(file) {
  await guarded(null, async () => setImage(await uploadFile(file)));
}

// ---------------------------------------------------------------- regions
/** Add regions as the API returns them ({id, label, score, box, area, source, rle}); known ids kept. */
function addRegions(list) {
  for (const r of list || []) {
    if (!r || !r.id || state.regions.has(r.id)) continue;
    if (!state.image || r.rle.size[0] !== state.image.height || r.rle.size[1] !== state.image.width) continue;
    const index = state.regions.size;
    const mask = decodeRle(r.rle);
    state.regions.set(r.id, { ...r, mask, index, layer: maskLayer(mask, regionColor(index)) });
  }
  renderRegions();
}

function toggleSelected(id, on) {
  const k = state.selected.indexOf(id);
  const want = on === undefined ? k < 0 : on;
  if (want && k < 0) state.selected.push(id);
  if (!want && k >= 0) state.selected.splice(k, 1);
  renderRegions();
}

function prompt(id) {
  const k = state.selected.indexOf(id);
  return k < 0 ? null : `<Prompt${k}>`;
}

function describeRegion(r) {
  const parts = [r.label || r.source];
  if (r.label && r.score !== null && r.score !== undefined) parts.push(r.score.toFixed(2));  // the detector's
  parts.push(`${r.area} px`);
  return parts.join(" · ");
}

function renderRegions() {
  const list = $("regions"), chips = $("chips");
  list.replaceChildren();
  chips.replaceChildren();
  for (const r of state.regions.values()) {
    const color = css(regionColor(r.index));
    const li = document.createElement("li");
    li.dataset.id = r.id;
    li.classList.toggle("cited", !!(state.highlight && state.highlight.has(r.id)));
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.selected.includes(r.id);
    box.setAttribute("aria-label", `select ${r.id}`);
    box.addEventListener("change", () => toggleSelected(r.id, box.checked));
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = color;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${r.id} · ${describeRegion(r)}`;
    const order = document.createElement("span");
    order.className = "order";
    order.textContent = prompt(r.id) || "";
    li.append(box, sw, meta, order);
    list.append(li);

    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.dataset.id = r.id;
    chip.style.borderColor = color;
    chip.textContent = prompt(r.id) ? `${r.id} ${prompt(r.id)}` : r.id;
    chip.title = `insert ${r.id} into the question`;
    chip.addEventListener("click", () => insertPrompt(r.id));
    chips.append(chip);
  }
  $("no-regions").hidden = state.regions.size > 0;
  $("show-all").hidden = !state.highlight;
  view.show({
    regions: [...state.regions.values()], selected: state.selected, highlight: state.highlight,
    pending: state.pending, points: state.points,
  });
}

/** Insert the region's <PromptN> at the cursor of the GAR question (selecting the region first). */
function insertPrompt(id) {
  if (!state.selected.includes(id)) toggleSelected(id, true);
  const field = $("gar-question");
  const token = prompt(id);
  const at = field.selectionStart ?? field.value.length, to = field.selectionEnd ?? at;
  field.value = field.value.slice(0, at) + token + field.value.slice(to);
  field.focus();
  field.setSelectionRange(at + token.length, at + token.length);
}

function onPick([x, y]) {
  const hit = [...state.regions.values()].reverse().find((r) => r.mask.bits[y * r.mask.width + x]);
  if (hit) toggleSelected(hit.id);
}

// ---------------------------------------------------------------- drawing regions (segment)
function clearPending() {
  state.previews += 1;  // a preview still on its way is not shown
  state.pending = null;
  state.points = [];
  $("pending").hidden = true;
  renderRegions();
}

async function preview(prompt) {
  const seq = ++state.previews;
  const res = await postJSON("/v1/segment", { image: needImage(), region: prompt, store: false });
  if (seq !== state.previews) return;  // a newer box / click was sent meanwhile: its answer wins
  const mask = decodeRle(res.region.rle);
  state.pending = { prompt, region: res.region, layer: maskLayer(mask, [255, 255, 255]) };
  $("pending-text").textContent = `${res.segmented ? "Segmenter mask" : "No segmenter mask: " + res.region.source}`
    + ` · ${res.region.area} px`;
  $("pending").hidden = false;
  renderRegions();
}

function onBox(box) {
  state.points = [];
  guarded(null, () => preview({ box }));
}

function onPoint(xy, label) {
  state.points.push({ xy, label });
  const prompt = { points: state.points.map((p) => p.xy), labels: state.points.map((p) => p.label) };
  guarded(null, async () => {
    if (!label && !state.points.some((p) => p.label)) {
      renderRegions();
      throw new Error("Click on the object first: a mask needs at least one object point.");
    }
    await preview(prompt);
  });
}

async function addPending() {
  if (!state.pending) return;
  const res = await postJSON("/v1/segment", { image: needImage(), region: state.pending.prompt, store: true });
  clearPending();
  addRegions([res.region]);
  toggleSelected(res.region.id, true);
  setLast(res, null, "segment");
}

// ---------------------------------------------------------------- tools
function setLast(json, overlay, name) {
  state.last = { json, overlay, name };
  $("download-json").disabled = false;
  $("download-overlay").disabled = !overlay;
}

/** `text` in `el` with the region ids it names as chips in their colours. */
function richText(el, text, label) {
  richTextOf(el, text, label, (id) => {
    const r = state.regions.get(id);
    return r ? css(regionColor(r.index)) : null;
  });
}

async function ground() {
  const phrases = $("phrases").value.trim();
  if (!phrases) throw new Error("Type what to find, e.g. 'a cup. a spoon.'");
  const body = { image: needImage(), phrases, box_threshold: Number($("threshold").value) };
  if ($("max-regions").value) body.max_regions = Number($("max-regions").value);
  const res = await postJSON("/v1/ground?overlay=true", body);
  addRegions(res.output.regions);
  setLast(res, res.overlay_png_base64, "ground");
  if (!res.output.regions.length) throw new Error(res.content);
}

async function describe() {
  const image = needImage();
  if (state.selected.length !== 1) throw new Error(`Describe needs exactly one ticked region (${state.selected.length} ticked).`);
  const res = await postJSON("/v1/describe?overlay=true", { image, region: state.selected[0] });
  richText($("gar-answer"), res.output.description, `GAR on ${state.selected[0]}:`);
  setLast(res, res.overlay_png_base64, "describe");
}

async function relate() {
  const image = needImage();
  const question = $("gar-question").value.trim();
  if (!state.selected.length) throw new Error("Tick the regions the question is about (or click them above the question).");
  if (!question) throw new Error("Type a question naming the regions as <Prompt0>, <Prompt1>, … (click a region to insert it).");
  const res = await postJSON("/v1/relate?overlay=true", { image, regions: state.selected, question });
  richText($("gar-answer"), res.output.answer_with_ids, "GAR:");
  setLast(res, res.overlay_png_base64, "relate");
}

// ---------------------------------------------------------------- planner
async function askPlanner() {
  const image = needImage();
  const question = $("plan-question").value.trim();
  if (!question) throw new Error("Type a question for the planner.");
  state.run = new AbortController();
  $("plan-stop").hidden = false;
  state.highlight = null;
  resetSteps($("plan-steps"));
  $("plan-answer").textContent = "";
  renderRegions();
  let final = null;
  try {
    await postEvents("/v1/ask", { image, question }, (name, data) => {
      renderEvent($("plan-steps"), data);
      addRegions(eventRegions(data));
      final = outcome(data) || final;
    }, state.run.signal);
  } catch (err) {
    if (err.name !== "AbortError") throw err;
    renderEvent($("plan-steps"), { type: "error", message: "stopped: the question was cancelled" });
    return;
  } finally {
    state.run = null;
    $("plan-stop").hidden = true;
  }
  if (!final) throw new Error("The planner's answer stream ended early; try again.");
  if (final.error) throw new Error(`The planner failed: ${final.error}`);
  state.highlight = final.cited.length ? new Set(final.cited) : null;
  richText($("plan-answer"), final.answer, "Answer:");
  setLast(final.result, final.overlay, "answer");
  renderRegions();
}

// ---------------------------------------------------------------- downloads
function downloadJSON() {
  if (!state.last) return;
  download(`gar-${state.last.name}.json`, new Blob([JSON.stringify(state.last.json, null, 2)], { type: "application/json" }));
}

function downloadOverlay() {
  if (!state.last || !state.last.overlay) return;
  download(`gar-${state.last.name}-overlay.png`, state.last.overlay, "image/png");
}

// ---------------------------------------------------------------- wiring
function setMode(mode) {
  for (const b of document.querySelectorAll("#modes [data-mode]")) b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
  view.mode = mode;
  $("negative-label").hidden = mode !== "points";
  if (mode !== "points") state.points = [];
  hint();
}

function wire() {
  $("error-close").addEventListener("click", clearError);
  $("file").addEventListener("change", (e) => { const f = e.target.files[0]; e.target.value = ""; if (f) openFile(f); });
  $("open-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const ref = $("open-ref").value.trim();
    guarded(e.submitter, async () => {
      if (!ref) throw new Error("Type the image's path on the server (under its --allow-dir).");
      await setImage(await postJSON("/v1/images", { image: ref }));
    });
  });
  const stage = $("stage");
  stage.addEventListener("dragover", (e) => { e.preventDefault(); stage.classList.add("drop"); });
  stage.addEventListener("dragleave", () => stage.classList.remove("drop"));
  stage.addEventListener("drop", (e) => {
    e.preventDefault();
    stage.classList.remove("drop");
    const f = e.dataTransfer.files[0];
    if (f) openFile(f);
  });
  for (const b of document.querySelectorAll("#modes [data-mode]")) b.addEventListener("click", () => setMode(b.dataset.mode));
  $("negative").addEventListener("change", (e) => { view.negative = e.target.checked; });
  $("box-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(e.submitter, async () => {
      const box = $("box-text").value.split(/[\s,;]+/).filter(Boolean).map(Number);
      if (box.length !== 4 || box.some((v) => !Number.isFinite(v))) {
        throw new Error("Type a box as four numbers: x1, y1, x2, y2 (image pixels, origin top-left).");
      }
      state.points = [];
      await preview({ box });
    });
  });
  $("pending-add").addEventListener("click", (e) => guarded(e.currentTarget, addPending));
  $("pending-clear").addEventListener("click", clearPending);
  $("ground-form").addEventListener("submit", (e) => { e.preventDefault(); guarded($("ground-btn"), ground); });
  $("describe-btn").addEventListener("click", (e) => guarded(e.currentTarget, describe));
  $("relate-btn").addEventListener("click", (e) => guarded(e.currentTarget, relate));
  $("plan-btn").addEventListener("click", (e) => guarded(e.currentTarget, askPlanner));
  $("plan-stop").addEventListener("click", () => state.run && state.run.abort());
  $("show-all").addEventListener("click", () => { state.highlight = null; renderRegions(); });
  $("download-json").addEventListener("click", downloadJSON);
  $("download-overlay").addEventListener("click", downloadOverlay);
  new ResizeObserver(() => view.fit()).observe(stage);
}

wire();
loadStatus();
