"""Serving the app to a room: a client of Streamlit's own websocket protocol (:mod:`serving.protocol`).

Used by the workshop benchmark (``benchmarks/bench_workshop.py``) to simulate participants without browsers, and
by the server warm-up to open a list of links once at start.
"""
