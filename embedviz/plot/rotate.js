// 3D: project x, y, z (centred, unit radius) for the yaw / pitch of the sliders, put
// nearer points later in the rows so they are drawn on top, keep selection and labels.
// Runs once per animation frame however many slider changes came in (yaw and pitch
// both move while dragging).
const pending = window.__embedviz_turn ?? (window.__embedviz_turn = new Set())
if (!pending.has(points.id)) {
  pending.add(points.id)
  requestAnimationFrame(() => {
    pending.delete(points.id)
    turn()
  })
}

function turn() {
  const a = yaw.value * Math.PI / 180, b = pitch.value * Math.PI / 180
  const ca = Math.cos(a), sa = Math.sin(a), cb = Math.cos(b), sb = Math.sin(b)
  const d = points.data
  const n = d.x.length
  const X = d.x, Y = d.y, Z = d.z
  const px = new Float32Array(n), py = new Float32Array(n), depth = new Float32Array(n)
  const B = 512
  const bucket = new Uint16Array(n), start = new Int32Array(B + 1)
  for (let r = 0; r < n; r++) {
    const x1 = ca * X[r] + sa * Z[r]
    const z1 = -sa * X[r] + ca * Z[r]
    const y2 = cb * Y[r] - sb * z1
    const z2 = sb * Y[r] + cb * z1          // towards the viewer
    const f = camera / (camera - z2)        // perspective
    px[r] = x1 * f
    py[r] = y2 * f
    const t = Math.min(1, Math.max(0, (z2 + 1) / 2))
    depth[r] = t
    const k = Math.min(B - 1, Math.floor(t * B))
    bucket[r] = k
    start[k + 1]++
  }
  for (let k = 0; k < B; k++) start[k + 1] += start[k]
  const perm = new Int32Array(n)            // new row j shows old row perm[j]
  const inv = new Int32Array(n)
  for (let r = 0; r < n; r++) {
    const j = start[bucket[r]]++
    perm[j] = r
    inv[r] = j
  }
  const out = {}
  for (const key of Object.keys(d)) {
    const src = key == "px" ? px : key == "py" ? py : key == "d" ? depth : d[key]
    const dst = new src.constructor(n)
    for (let j = 0; j < n; j++) dst[j] = src[perm[j]]
    out[key] = dst
  }
  const selected = Array.from(points.selected.indices, (r) => inv[r])
  points.data = out
  points.selected.indices = selected
  // move the labels with their words
  const rows = ev.row_index()
  const L = labels.data
  const lx = L.i.map((i) => out.px[rows[i]]), ly = L.i.map((i) => out.py[rows[i]])
  labels.data = {...L, x: lx, y: ly}
}
