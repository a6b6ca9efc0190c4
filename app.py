"""Facial-expression workbench: `streamlit run app.py`.

Four pages (Classify, Video, Benchmarks, About) under pages/, linked from a bar at the top (no
sidebar); what they show comes from fer_core (which never imports streamlit) and ui/.
"""

import streamlit as st

st.set_page_config(page_title="Facial-expression workbench", page_icon=":material/mood:", layout="wide")

page = st.navigation(
    [
        st.Page("pages/classify.py", title="Classify", icon=":material/face:", default=True),
        st.Page("pages/video.py", title="Video", icon=":material/movie:"),
        st.Page("pages/benchmarks.py", title="Benchmarks", icon=":material/leaderboard:"),
        st.Page("pages/about.py", title="About", icon=":material/info:"),
    ],
    position="top",
)
page.run()
