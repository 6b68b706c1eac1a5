// The HTTP API of `gar serve`, as the page uses it. Every failure becomes an ApiError whose
// message is the server's own sentence (errors are {"error": {"type", "message", ...}}).

export class ApiError extends Error {
  constructor(message, status = 0, type = "network") {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
  }
}

async function errorOf(res) {
  let text = "";
  try { text = await res.text(); } catch (e) { /* body unreadable: keep the status line */ }
  try {
    const err = JSON.parse(text).error;
    if (err && err.message) return new ApiError(err.message, res.status, err.type || "error");
  } catch (e) { /* not JSON: a proxy or a crash page */ }
  const detail = text.trim().slice(0, 200);
  return new ApiError(`HTTP ${res.status} ${res.statusText}${detail ? ": " + detail : ""}`, res.status, "http");
}

async function request(url, init) {
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(`cannot reach the server (${e.message}); is gar serve still running?`);
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function getJSON(url) {
  return (await request(url, { headers: { accept: "application/json" } })).json();
}

/** GET a file (an image) → Blob; errors are the server's sentence like every other call. */
export async function getBlob(url) {
  return (await request(url, {})).blob();
}

export async function postJSON(url, body) {
  const res = await request(url, {
    method: "POST", headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  });
  return res.json();
}

/** Upload an image file (multipart) → {image_id, width, height}. */
export async function uploadFile(file) {
  const form = new FormData();
  form.append("file", file, file.name || "image");
  return (await request("/v1/images", { method: "POST", body: form })).json();
}

/**
 * POST `body` and read the answer as server-sent events, calling onEvent(name, data) for each
 * (data parsed from JSON). Resolves when the stream ends; `signal` aborts it.
 */
export async function postEvents(url, body, onEvent, signal) {
  const res = await request(url, {
    method: "POST", signal,
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(body),
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    // An event ends at a blank line; "\r" is held back when last, in case "\n" follows.
    const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    let text = buffer.slice(0, cut).replace(/\r\n?/g, "\n");
    buffer = buffer.slice(cut);
    let end;
    while ((end = text.indexOf("\n\n")) >= 0) {
      dispatch(text.slice(0, end), onEvent);
      text = text.slice(end + 2);
    }
    buffer = text + buffer;
  }
  if (buffer.trim()) dispatch(buffer.replace(/\r\n?/g, "\n"), onEvent);
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;  // comments are keep-alive pings
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (data.length) onEvent(name, JSON.parse(data.join("\n")));
}
