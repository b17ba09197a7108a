// embedviz: helpers shared by every callback of a word map. The page holds this text
// once (as the code of an unused CustomJS passed to every callback as `lib`); each
// callback builds `ev` from it with its own arguments, see _common.LIB_PRELUDE.
// Conventions: `points` is the drawn source (rows may be reordered in 3D, column
// `orig` then maps a row to its original index); `meta` holds word / rank / cluster in
// the original order; `clusters.data.name` the cluster names, `extra.data.word` the
// neighbours that are not on the map; `labels` holds the text labels (x, y, text,
// i = original index, kind = "base" | "search" | "pin"); `group` names what the
// colours show ("cluster" or "label"); map labels are cut to `label_chars` characters.
const ev = {
  escape(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    })[c])
  },
  short(s) {
    // as _common.short_text: code points, not UTF-16 units, so no emoji is cut in half
    const a = Array.from(String(s))
    return a.length <= label_chars ? String(s) : a.slice(0, label_chars - 1).join("") + "…"
  },
  n() { return meta.data.word.length },
  orig_of(r) { const o = points.data.orig; return o == null ? r : o[r] },
  row_index() {
    // original index -> current row of `points`
    const o = points.data.orig
    const n = ev.n()
    const rows = new Int32Array(n)
    for (let r = 0; r < n; r++) rows[o == null ? r : o[r]] = r
    return rows
  },
  rank_of(i) { const rk = meta.data.rank; return rk == null ? i + 1 : rk[i] },
  cluster_of(i) {
    const c = meta.data.cluster
    return c == null ? "" : clusters.data.name[c[i]]
  },
  word_of(i) {
    const n = ev.n()
    return i < n ? meta.data.word[i] : extra.data.word[i - n]
  },
  neighbours(i) {
    // [[index into words + extra words, similarity], ...]
    const out = []
    if (nbrs == null) return out
    const idx = nbrs.data.idx, sim = nbrs.data.sim
    for (let j = i * k; j < (i + 1) * k; j++) {
      if (idx[j] < 0 || idx[j] >= ev.n() + extra.data.word.length) break
      out.push([idx[j], sim[j] / 100])
    }
    return out
  },
  set_labels(kind, indices) {
    // replace the labels of one kind by the words at these original indices
    const rows = ev.row_index()
    const xs = points.data[xf], ys = points.data[yf]
    const old = labels.data
    const d = {x: [], y: [], text: [], i: [], kind: []}
    const seen = new Set()
    for (let r = 0; r < old.text.length; r++) {
      if (old.kind[r] == kind) continue
      seen.add(old.i[r])
      for (const key in d) d[key].push(old[key][r])
    }
    for (const i of indices) {
      if (seen.has(i) || i >= ev.n()) continue
      seen.add(i)
      const r = rows[i]
      d.x.push(xs[r]); d.y.push(ys[r]); d.text.push(ev.short(meta.data.word[i]))
      d.i.push(i); d.kind.push(kind)
    }
    labels.data = d
  },
  zoom_to(rows, x_range, y_range, home) {
    if (rows.length == 0) return
    const xs = points.data[xf], ys = points.data[yf]
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity
    for (const r of rows) {
      x0 = Math.min(x0, xs[r]); x1 = Math.max(x1, xs[r])
      y0 = Math.min(y0, ys[r]); y1 = Math.max(y1, ys[r])
    }
    // keep the aspect ratio of the home view; never zoom in further than 1/8 of it,
    // so a single word is shown among its surroundings
    const hw = home[1] - home[0], hh = home[3] - home[2]
    let w = Math.max((x1 - x0) * 1.3, hw / 8), h = Math.max((y1 - y0) * 1.3, hh / 8)
    if (w / h > hw / hh) h = w * hh / hw; else w = h * hw / hh
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2
    x_range.setv({start: cx - w / 2, end: cx + w / 2})
    y_range.setv({start: cy - h / 2, end: cy + h / 2})
  },
  go_home(x_range, y_range, home) {
    x_range.setv({start: home[0], end: home[1]})
    y_range.setv({start: home[2], end: home[3]})
  },
  by_rank(indices) { return indices.sort((a, b) => ev.rank_of(a) - ev.rank_of(b)) },
}
return ev
