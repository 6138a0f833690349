"""The app's own helpers, between the pages and the libraries, cut by role.

- :mod:`ui.controls` - the sidebar (one table row per setting) and the pages' own bound controls;
  :mod:`ui.links` - reading, checking and writing links (the URL is the state), the notice, the share link;
- :mod:`ui.sources` - "the sidebar's model": a sample model or this session's file, one dispatch;
- :mod:`ui.compute` - cached reductions per page family (small arrays keyed by strings), no drawing;
- :mod:`ui.figures` - pure Plotly figure builders: pre-reduced arrays in, ``go.Figure`` out;
- :mod:`ui.widgets` - page furniture (intros, stats panels, friendly errors, shared charts);
  :mod:`ui.views` - drawn sections several pages share (job progress, uploads, downloads, energy, ORT);
- :mod:`ui.jobs` - the one job runner for long work, :mod:`ui.result_store` - results shared by replicas;
- :mod:`ui.i18n` - English and Chinese; :mod:`ui.text` - user text made safe for markdown.

Nothing here mutates a cached model: quantized models are the copies ``quantlib.model`` returns.
"""
