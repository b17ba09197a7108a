"""embedviz.stats."""
