// Reset: clear search, pins and selection, go back to the home view.
search.value = ""
search.value_input = ""
points.selected.indices = []
ev.set_labels("search", [])
ev.set_labels("pin", [])
message.text = ""
info.text = ""
ev.go_home(x_range, y_range, home)
if (yaw != null) { yaw.value = home_angles[0]; pitch.value = home_angles[1] }
