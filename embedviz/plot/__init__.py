"""embedviz.plot."""
