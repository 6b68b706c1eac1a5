// The planner's steps as they arrive from POST /v1/ask: the page's one reader of the planner's
// event format ({"type": "tool_call" | "tool_result" | "answer" | "error", ...}; see
// gar_tool/integrations/http/ask.py, the server's one place for it).

const MAX_TEXT = 800;

export function resetSteps(list) {
  list.replaceChildren();
}

function short(value) {
  if (typeof value === "string") return JSON.stringify(value.length > 120 ? value.slice(0, 117) + "…" : value);
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value.join(", ");
  const text = JSON.stringify(value);
  return text.length > 120 ? text.slice(0, 117) + "…" : text;
}

/** "phrases: "a cup" · box_threshold: 0.3" — a tool call's arguments without the image. */
export function argsText(args) {
  return Object.entries(args || {}).filter(([k]) => k !== "image").map(([k, v]) => `${k}: ${short(v)}`).join(" · ");
}

function item(list, callId) {
  const found = callId ? list.querySelector(`li[data-call="${CSS.escape(callId)}"]`) : null;
  if (found) return found;
  const li = document.createElement("li");
  if (callId) li.dataset.call = callId;
  list.append(li);
  return li;
}

function line(li, cls, text) {
  const span = document.createElement("span");
  span.className = cls;
  span.textContent = text;
  li.append(span);
  return span;
}

/** The regions an event carries (a tool's output, the answer's evidence), as the API returns regions. */
export function eventRegions(event) {
  if (event.type === "tool_result" && event.output) {
    return event.output.regions || (event.output.region ? [event.output.region] : []);
  }
  if (event.type === "answer") return ((event.result || {}).evidence || {}).regions || [];
  return [];
}

/** A final event → {answer, cited, result, overlay} or {error}; null for the steps before it. */
export function outcome(event) {
  if (event.type === "error") return { error: String(event.message || "the planner failed") };
  if (event.type !== "answer") return null;
  const result = event.result || {};
  return { answer: String(result.answer || ""), cited: result.cited || [], result,
           overlay: event.overlay_png_base64 || null };
}

/** Show one event in `list` (an <ol>). */
export function renderEvent(list, event) {
  if (event.type === "tool_call") {
    const li = item(list, event.call_id);
    li.replaceChildren();
    li.className = "running";
    line(li, "tool", event.tool);
    const args = argsText(event.args);
    if (args) line(li, "args", ` (${args})`);
  } else if (event.type === "tool_result") {
    const li = item(list, event.call_id);
    if (!li.firstChild) line(li, "tool", event.tool);
    li.className = event.ok ? "done" : "failed";
    const badge = line(li, `badge ${event.ok ? "ok" : "bad"}`, event.ok ? "done" : "failed");
    badge.before(" ");
    const text = String(event.content || "");
    line(li, "out", text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) + "…" : text);
  } else if (event.type === "answer") {
    const li = item(list, null);
    li.className = "done";
    const r = event.result || {};
    line(li, "tool", "answer");
    line(li, "args", ` (${(r.steps || []).length} tool steps, stopped: ${r.stopped || "answer"})`);
  } else if (event.type === "error") {
    const li = item(list, null);
    li.className = "failed";
    line(li, "tool", "error");
    line(li, "out", String(event.message || "the planner failed"));
  }
  for (const li of list.querySelectorAll("li.running")) {
    if (event.type === "answer" || event.type === "error") li.className = "failed";
  }
}
