"""Pure Plotly figure builders: pre-reduced arrays in, a small ``go.Figure`` out. No Streamlit."""
