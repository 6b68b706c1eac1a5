// Small DOM helpers of the page: answers with region chips, and files to download.

/**
 * Put `text` in `el` (after an optional `label` line), each region id it names ("r12") shown as a
 * chip outlined in `colorOf(id)`; ids colorOf does not know stay plain text.
 */
export function richText(el, text, label, colorOf) {
  el.replaceChildren();
  if (label) {
    const l = document.createElement("span");
    l.className = "label";
    l.textContent = label;
    el.append(l);
  }
  for (const part of String(text).split(/\b(r\d+)\b/)) {
    const color = /^r\d+$/.test(part) ? colorOf(part) : null;
    if (color) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.borderColor = color;
      chip.textContent = part;
      el.append(chip);
    } else {
      el.append(document.createTextNode(part));
    }
  }
}

/** Offer `data` (a Blob, or base64 text of a `type` file) for download as `name`. */
export function download(name, data, type = "application/octet-stream") {
  const blob = data instanceof Blob ? data
    : new Blob([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], { type });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
