// The image with its regions, on one canvas at the image's own resolution (so one canvas pixel is
// one image pixel: coordinates sent to the server are image pixels, origin top-left), scaled by
// CSS to fit. Pointer input (mouse, touch, pen) becomes boxes, points and picks.

const GOLDEN = (Math.sqrt(5) - 1) / 2;
const FILL_ALPHA = 0.45;

/** Colour of region number `index` (0-based): the same hues as the server's overlays. */
export function regionColor(index) {
  const h = (index * GOLDEN) % 1, s = 0.8, v = 0.95;
  const i = Math.floor(h * 6), f = h * 6 - i;
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return [Math.floor(r * 255), Math.floor(g * 255), Math.floor(b * 255)];
}

export const css = ([r, g, b], a = 1) => `rgba(${r}, ${g}, ${b}, ${a})`;

/** A canvas holding a mask filled with `rgb` (translucent) and outlined (opaque). */
export function maskLayer(mask, rgb) {
  const { width: w, height: h, bits } = mask;
  const layer = document.createElement("canvas");
  layer.width = w;
  layer.height = h;
  const ctx = layer.getContext("2d");
  const img = ctx.createImageData(w, h);
  const px = img.data;
  const edge = Math.max(1, Math.round(Math.min(w, h) / 300));
  const fill = Math.round(FILL_ALPHA * 255);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!bits[i]) continue;
      let border = false;
      for (let d = 1; d <= edge && !border; d++) {
        border = x < d || y < d || x + d >= w || y + d >= h ||
          !bits[i - d] || !bits[i + d] || !bits[i - d * w] || !bits[i + d * w];
      }
      px.set([rgb[0], rgb[1], rgb[2], border ? 255 : fill], i * 4);
    }
  }
  ctx.putImageData(img, 0, 0);
  return layer;
}

export class View {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onBox: Function, onPoint: Function, onPick: Function}} handlers: onBox([x1, y1, x2, y2]),
   *   onPoint([x, y], label) with label 1 (object) or 0 (background), onPick([x, y]).
   */
  constructor(canvas, handlers) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.handlers = handlers;
    this.mode = "box";
    this.negative = false;
    this.image = null;
    this.drag = null;
    this.scene = { regions: [], pending: null, points: [], selected: [], highlight: null };
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", () => { this.drag = null; this.draw(); });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  }

  setImage(img) {
    this.image = img;
    this.w = img.naturalWidth;
    this.h = img.naturalHeight;
    this.canvas.hidden = false;
    this.fit();
  }

  /** Size the canvas to the stage's width and at most 75 % of the window's height, its pixels
   *  matching the screen's (drawing is done in image coordinates through a scale transform). */
  fit() {
    if (!this.image) return;
    const stage = this.canvas.parentElement;
    const scale = Math.min(stage.clientWidth / this.w, (window.innerHeight * 0.75) / this.h);
    const cssW = Math.max(1, Math.floor(this.w * scale)), cssH = Math.max(1, Math.floor(this.h * scale));
    const dpr = window.devicePixelRatio || 1;
    this.canvas.style.width = `${cssW}px`;
    this.canvas.style.height = `${cssH}px`;
    this.canvas.width = Math.round(cssW * dpr);
    this.canvas.height = Math.round(cssH * dpr);
    this.draw();
  }

  /** A pointer event → [x, y] in image pixels (clamped to the image). */
  toImage(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * this.w;
    const y = ((e.clientY - r.top) / r.height) * this.h;
    return [Math.min(Math.max(x, 0), this.w), Math.min(Math.max(y, 0), this.h)];
  }

  /** Image pixels per CSS pixel of the displayed canvas. */
  imagePerCss() {
    return this.w / Math.max(1, this.canvas.getBoundingClientRect().width);
  }

  down(e) {
    if (!this.image || e.button > 2) return;
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    const p = this.toImage(e);
    this.drag = { start: p, end: p, button: e.button, shift: e.shiftKey };
  }

  move(e) {
    if (!this.drag) return;
    this.drag.end = this.toImage(e);
    if (this.mode === "box") this.draw();
  }

  up(e) {
    const drag = this.drag;
    this.drag = null;
    if (!drag) return;
    drag.end = this.toImage(e);
    const [x0, y0] = drag.start, [x1, y1] = drag.end;
    const moved = Math.hypot(x1 - x0, y1 - y0) / this.imagePerCss();  // in CSS pixels
    if (this.mode === "box") {
      const box = [Math.floor(Math.min(x0, x1)), Math.floor(Math.min(y0, y1)),
                   Math.ceil(Math.max(x0, x1)), Math.ceil(Math.max(y0, y1))];
      this.draw();
      if (moved >= 4 && box[2] - box[0] >= 2 && box[3] - box[1] >= 2) this.handlers.onBox(box);
    } else if (moved < 8) {
      const point = [Math.min(Math.floor(x1), this.w - 1), Math.min(Math.floor(y1), this.h - 1)];
      if (this.mode === "points") {
        const background = this.negative || drag.shift || drag.button === 2;
        this.handlers.onPoint(point, background ? 0 : 1);
      } else {
        this.handlers.onPick(point);
      }
    }
  }

  /** Update what is shown: {regions: [{id, index, layer, box, label}], pending: {layer, box} | null,
   *  points: [{xy, label}], selected: [ids], highlight: Set of ids | null}. */
  show(scene) {
    this.scene = { ...this.scene, ...scene };
    this.draw();
  }

  draw() {
    if (!this.image) return;
    const { ctx, canvas } = this;
    const { regions, pending, points, selected, highlight } = this.scene;
    const w = this.w, h = this.h;
    const k = canvas.width / w;  // canvas pixels per image pixel
    const px = (window.devicePixelRatio || 1) / k;  // one CSS pixel, in image pixels
    const line = 1.5 * px, font = 13 * px;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(k, 0, 0, k, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.globalAlpha = 1;
    ctx.drawImage(this.image, 0, 0, w, h);
    ctx.imageSmoothingEnabled = k < 1;  // enlarged masks keep their pixel edges
    for (const r of regions) {
      ctx.globalAlpha = highlight && !highlight.has(r.id) ? 0.15 : 1;
      ctx.drawImage(r.layer, 0, 0, w, h);
    }
    ctx.globalAlpha = 1;
    ctx.font = `${font}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const r of regions) {
      if (highlight && !highlight.has(r.id)) continue;
      const color = regionColor(r.index);
      const [x1, y1, x2, y2] = r.box;
      const n = selected.indexOf(r.id);
      if (n >= 0) {
        ctx.lineWidth = 2 * line;
        ctx.setLineDash([4 * line, 3 * line]);
        ctx.strokeStyle = css(color);
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        ctx.setLineDash([]);
      }
      const tag = [r.id, r.label, n >= 0 ? `= <Prompt${n}>` : null].filter(Boolean).join(" ");
      const tw = ctx.measureText(tag).width, pad = 2 * px, th = font + 2 * pad;
      const tx = Math.min(Math.max(0, x1), Math.max(0, w - tw - 2 * pad));
      const ty = y1 >= th ? y1 - th : Math.min(Math.max(0, y2), Math.max(0, h - th));  // above the box, else below
      ctx.fillStyle = css(color);
      ctx.fillRect(tx, ty, tw + 2 * pad, font + 2 * pad);
      ctx.fillStyle = "#000";
      ctx.fillText(tag, tx + pad, ty + pad);
    }
    if (pending) {
      ctx.globalAlpha = 0.9;
      ctx.drawImage(pending.layer, 0, 0, w, h);
      ctx.globalAlpha = 1;
    }
    for (const p of points) {
      const [x, y] = p.xy;
      ctx.beginPath();
      ctx.arc(x + 0.5, y + 0.5, 5 * px, 0, 2 * Math.PI);
      ctx.fillStyle = p.label ? "#12b76a" : "#f04438";
      ctx.fill();
      ctx.lineWidth = line;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    if (this.drag && this.mode === "box") {
      const [x0, y0] = this.drag.start, [x1, y1] = this.drag.end;
      ctx.lineWidth = 2 * line;
      ctx.strokeStyle = "#fff";
      ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      ctx.setLineDash([4 * line, 4 * line]);
      ctx.strokeStyle = "#1f6feb";
      ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      ctx.setLineDash([]);
    }
  }
}
