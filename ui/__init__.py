"""The app's own helpers, between the pages and the libraries.

- :mod:`ui.state` - the sidebar controls, bound to query parameters (the URL is the state), link checking and
  the "share this view" link;
- :mod:`ui.data` - cached loaders and computations (models with ``st.cache_resource``, small arrays with
  ``st.cache_data`` keyed by strings);
- :mod:`ui.figures` - pure plotly figure builders: pre-reduced arrays in, ``go.Figure`` out;
- :mod:`ui.components` - page furniture: intros, stats panels, friendly errors.

Nothing here mutates a cached model: quantized models are the copies ``quantlib.model`` returns.
"""
