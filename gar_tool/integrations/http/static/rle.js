// COCO run-length encoded masks (what every region of the API carries as "rle") → pixel masks.
//
// An RLE is {size: [height, width], counts}: run lengths over the pixels in column-major order
// (down the first column, then the next), starting with a run of zeros. `counts` is either a list
// of numbers or COCO's compressed string: each count is written in 5-bit groups (low bits first)
// as characters offset by 48, bit 0x20 meaning "more groups follow" and bit 0x10 of the last group
// the sign; from the fourth count on, the value stored is the difference to the count two before.

/** Run lengths of a COCO RLE (`counts` string or list) → Array of numbers. */
export function runLengths(counts) {
  if (Array.isArray(counts)) return counts.map(Number);
  if (typeof counts !== "string") throw new TypeError("RLE counts must be a string or a list");
  const out = [];
  let p = 0;
  while (p < counts.length) {
    let x = 0, k = 0, more = true, c = 0;
    while (more) {
      if (p >= counts.length) throw new RangeError("RLE counts string ends inside a number");
      c = counts.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10) && 5 * k < 32) x |= -1 << (5 * k);
    }
    if (out.length > 2) x += out[out.length - 2];
    out.push(x);
  }
  return out;
}

/**
 * Decode a COCO RLE into a row-major mask: Uint8Array of height*width, 1 inside, 0 outside.
 * @param {{size: number[], counts: string|number[]}} rle
 * @returns {{width: number, height: number, bits: Uint8Array, area: number}}
 */
export function decodeRle(rle) {
  const [height, width] = rle.size;
  const total = height * width;
  const bits = new Uint8Array(total);
  const runs = runLengths(rle.counts);
  let pos = 0, area = 0;
  for (let i = 0; i < runs.length; i++) {
    const n = runs[i];
    if (n < 0 || pos + n > total) throw new RangeError("RLE runs do not fit the mask size");
    if (i % 2 === 1) {  // a run of ones, column-major: pixel index pos → (row pos % H, column pos / H)
      for (let j = pos; j < pos + n; j++) bits[(j % height) * width + Math.floor(j / height)] = 1;
      area += n;
    }
    pos += n;
  }
  return { width, height, bits, area };
}
