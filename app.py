"""Facial-expression workbench: `streamlit run app.py`.

Three pages (Classify, Benchmarks, About) under pages/; the logic they show lives in
fer_core.appdata and fer_core.predict, which never import streamlit.
"""

import streamlit as st

st.set_page_config(page_title="Facial-expression workbench", page_icon=":material/mood:", layout="wide")

page = st.navigation(
    [
        st.Page("pages/classify.py", title="Classify", icon=":material/face:", default=True),
        st.Page("pages/benchmarks.py", title="Benchmarks", icon=":material/leaderboard:"),
        st.Page("pages/about.py", title="About", icon=":material/info:"),
    ]
)
page.run()
