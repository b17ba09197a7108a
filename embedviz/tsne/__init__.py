"""embedviz.tsne."""
