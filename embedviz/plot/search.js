// Search box: select, label and zoom to the matching words (exact or regex).
const query = (mode == "value" ? search.value : search.value_input ?? search.value).trim()
const regex = regex_toggle.active
const words = meta.data.word
const n = words.length
let hits = []
if (query === "") {
  points.selected.indices = []
  ev.set_labels("search", [])
  message.text = ""
} else {
  let test = null
  let wanted = null
  if (regex) {
    try {
      const re = new RegExp(query, "i")
      test = (w) => re.test(w)
    } catch (err) {
      message.text = '<span style="color:#b00">' + ev.escape(err.message) + "</span>"
    }
  } else {
    wanted = new Set(query.toLowerCase().split(/\s+/))
    test = (w) => wanted.has(w.toLowerCase())
  }
  if (test != null) {
    for (let i = 0; i < n; i++) if (test(words[i])) hits.push(i)
    const rows = ev.row_index()
    const sel = hits.map((i) => rows[i])
    points.selected.indices = sel
    const shown = ev.by_rank(hits.slice()).slice(0, max_search_labels)
    ev.set_labels("search", shown)
    const what = regex ? "regex /" + query + "/" : "“" + query + "”"
    let text = hits.length + (hits.length == 1 ? " match" : " matches") + " for " + what
    if (hits.length > max_search_labels) text += " (labels on the " + max_search_labels + " most frequent)"
    if (wanted != null && hits.length > 0) {
      // the words of an exact search that found nothing (a typo among several words)
      const found = new Set(hits.map((i) => words[i].toLowerCase()))
      const missing = new Set(query.split(/\s+/).filter((w) => !found.has(w.toLowerCase())))
      if (missing.size > 0) text += "; no match: " + [...missing].join(" ")
    }
    message.text = ev.escape(text)
    // no match (also after a partial query that matched while typing): the whole map
    if (hits.length > 0) ev.zoom_to(sel, x_range, y_range, home)
    else ev.go_home(x_range, y_range, home)
  }
}
