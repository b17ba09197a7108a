"""embedviz.ui.pages."""
