"""What the Streamlit pages draw: text escaping, the annotated photo, Plotly figures, tables.

Plain functions over fer_core's results, so each can be built and tested without a browser or
a running server; only app_state.py and the pages import streamlit. fer_core never imports this
package (nor plotly).
"""
