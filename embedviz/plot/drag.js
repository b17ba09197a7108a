// 3D: dragging on the plot turns the cloud (it moves the yaw and pitch sliders).
const store = window.__embedviz_drag ?? (window.__embedviz_drag = {})
const key = points.id
if (cb_obj.event_name == "panstart") {
  store[key] = {sx: cb_obj.sx, sy: cb_obj.sy, yaw: yaw.value, pitch: pitch.value, pending: false}
} else if (store[key] != null) {
  const s = store[key]
  let y = s.yaw + (cb_obj.sx - s.sx) * degrees_per_pixel
  y = ((y + 180) % 360 + 360) % 360 - 180
  const p = Math.min(90, Math.max(-90, s.pitch + (cb_obj.sy - s.sy) * degrees_per_pixel))
  s.target = [Math.round(y * 2) / 2, Math.round(p * 2) / 2]
  if (!s.pending) {
    s.pending = true
    requestAnimationFrame(() => {
      s.pending = false
      yaw.value = s.target[0]
      pitch.value = s.target[1]
    })
  }
  if (cb_obj.event_name == "panend") delete store[key]
}
