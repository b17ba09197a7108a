"""Drop a replaced page's models from the browser's document at once.

The server's Document forgets the models of a page taken out of the layout on the spot
(it recomputes what its roots reach on every change). BokehJS 3.9 does not: a patch from
the server that brings new models only adds them to the browser's document, and the
full pass that drops the unreachable ones is put off until no patch has come for 30 s
(``Document._schedule_recompute_all_models``, a debounce). A live page is sent a patch
every refresh, so that pass never ran: each session or worker switch left the whole old
page in ``Bokeh.documents[0].all_models`` (20 switches of the overview: 345 -> 7,085
models, ``get_model_by_name`` finding 21 ``eval_chart``), and every later
``get_model_by_name`` walked them all. Bokeh fixed the debounce upstream (bokeh/bokeh
#15289, a throttle); 3.9.2 still has it.

:func:`prune_on_swap` gives a container whose children are replaced a browser-side
callback that, right after the patch that replaced them, asks the document for that
pass through its public ``freeze_all_models`` (a freeze that ends outside a patch
recomputes the models its roots reach, detaching the rest).
"""

from __future__ import annotations

from bokeh.models import CustomJS

# after the patch: a freeze ended inside one is held back until the patch is applied
PRUNE_JS = """
const doc = cb_obj.document
if (doc != null && typeof doc.freeze_all_models === "function") {
  setTimeout(() => { if (cb_obj.document === doc) doc.freeze_all_models(() => {}) }, 0)
}
"""


def prune_on_swap(container, attr: str = "children"):
    """Make the browser drop the models ``container`` lets go of when ``attr`` changes.

    Parameters
    ----------
    container : bokeh.models.Model
        A layout whose children (or another property holding models) are replaced.
    attr : str, default="children"
        The property whose change lets models go.

    Returns
    -------
    bokeh.models.Model
        ``container`` itself.

    Examples
    --------
    >>> from bokeh.layouts import column
    >>> holder = prune_on_swap(column())
    >>> list(holder.js_property_callbacks)
    ['change:children']
    """
    container.js_on_change(attr, CustomJS(code=PRUNE_JS))
    return container
