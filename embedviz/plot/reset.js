// Reset: clear search, pins and selection, go back to the home view.
search.value = ""
search.value_input = ""
points.selected.indices = []
ev.set_labels("search", [])
ev.set_labels("pin", [])
message.text = ""
info.text = ""
x_range.setv({start: home[0], end: home[1]})
y_range.setv({start: home[2], end: home[3]})
if (yaw != null) { yaw.value = home_angles[0]; pitch.value = home_angles[1] }
