// Tap: pin the tapped word, label it and its neighbours, list them in the side panel.
const sel = points.selected.indices
if (sel.length > 0) {
  let best = ev.orig_of(sel[0])
  for (const r of sel) {
    const i = ev.orig_of(r)
    if (ev.rank_of(i) < ev.rank_of(best)) best = i
  }
  const nb = ev.neighbours(best)
  const pinned = [best].concat(nb.map(([j]) => j).filter((j) => j < ev.n()))
  const rows = ev.row_index()
  points.selected.indices = pinned.map((i) => rows[i])
  ev.set_labels("pin", pinned)
  let html = "<div><b>" + ev.escape(ev.word_of(best)) + "</b> &middot; rank " + ev.rank_of(best)
  const c = ev.cluster_of(best)
  if (c !== "") html += " &middot; " + ev.escape(group) + " " + ev.escape(c)
  html += "</div>"
  if (nb.length > 0) {
    html += '<ol style="margin:4px 0 0 0;padding-left:22px">'
    for (const [j, s] of nb) html += "<li>" + ev.escape(ev.word_of(j)) + " <span style=\"color:#777\">" + s.toFixed(2) + "</span></li>"
    html += "</ol>"
  } else if (nbrs == null) {
    html += '<div style="color:#777">no neighbour lists in this map</div>'
  }
  info.text = html
}
