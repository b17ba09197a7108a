// CustomJSHover formatter: `value` is the original index of the hovered word,
// `format` says which field to show. Bokeh escapes what this returns.
const i = value
if (format == "word") return ev.word_of(i)
if (format == "rank") return String(ev.rank_of(i))
if (format == "cluster") {
  const c = ev.cluster_of(i)
  return c === "" ? "" : group + " " + c
}
if (format == "nbrs") {
  return ev.neighbours(i).map(([j, s]) => ev.word_of(j) + "  " + s.toFixed(2)).join("\n")
}
return String(value)
