"""The Streamlit shell that hosts every app's pages (``aigc ui``)."""
