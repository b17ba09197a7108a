"""embedviz.ui."""
