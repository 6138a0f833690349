"""📖 Glossary (placeholder while the full page is written)."""

from __future__ import annotations

import streamlit as st

from ui.i18n import _

st.title("📖 " + _("Glossary"))
