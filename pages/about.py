"""About: what the models are, what the data can and cannot tell, privacy, and how to rebuild it all."""

import pandas as pd
import streamlit as st

from app_state import get_predictor, through_app, weights_dir
from fer_core.cards import load_model_cards
from fer_core.jsonfile import MAX_SMALL_JSON_BYTES
from fer_core.registry import list_models
from ui.tables import card_rows, describe_models
from ui.text import escape_markdown

through_app()  # a page opened by its address still runs inside app.py's navigation

st.title("About this workbench")
st.markdown(
    "Three networks from torchvision, adapted to 48×48 gray faces and trained on FER2013, read "
    "each face; their **ensemble** is the mean of their softmax outputs. Faces are found with OpenCV's LBP face "
    "cascade, then cropped, squared and resized to 48×48 gray the way FER2013 faces are, before the networks see them. "
    "With *Read the mirror too* (Classify), each network also reads the mirrored face and the two "
    "readings are averaged: the *TTA flip* runs on the Benchmarks page measure what that buys."
)

st.header("The models")
predictor = get_predictor()
loaded = predictor.models if predictor else {}
metas = {name: loaded[name].meta if name in loaded else {} for name in list_models()}
cards, unreadable = load_model_cards(weights_dir())
for m in describe_models(metas, cards):
    with st.expander(f"**{m['title']}**: {m['parameters'] / 1e6:.1f} M parameters", expanded=True):
        if not m["loaded"]:
            st.caption("No weights for this model are shipped yet: this is the registry's description.")
        st.markdown(f"From torchvision `{m['torchvision']}`; input {m['input']}.  \n**Head:** {m['head']}")
        st.markdown("**Changes from the torchvision network:**\n" + "\n".join(f"- {a}" for a in m["adaptations"]))
        if m["selected"]:
            st.markdown(f"**Checkpoint:** {m['selected']}")

if cards or unreadable:
    st.subheader("Model cards")
if unreadable:
    st.warning(
        f"Not shown: {', '.join(escape_markdown(n) for n in unreadable)}: not a readable model card "
        f"(over {MAX_SMALL_JSON_BYTES // 1024 // 1024} MB, not JSON, or nested too deep). "
        "`python -m fer_core card` writes them again.",
        icon=":material/description:",
    )
if cards:
    st.caption("Single view (no test-time augmentation); the checkpoint is chosen on PublicTest.")
    st.dataframe(pd.DataFrame(card_rows(cards)), hide_index=True)
    for name, card in cards.items():
        with st.expander(f"{escape_markdown(name)} (everything it records)"):
            st.json(card)

st.header("The data, and what it cannot tell you")
st.markdown(
    """
- **FER2013** (ICML 2013 challenge): 35,887 faces, 48×48 pixels, gray, found by web image search and labelled
  into seven expressions: angry, disgust, fear, happy, neutral, sad, surprise.
- **Skewed classes**: *disgust* has only 436 training images against 7,215 for *happy*, so the models
  are least reliable there; the Benchmarks page shows per-class scores, not just accuracy.
- **Noisy labels**: human agreement on FER2013 is estimated at about 65 %; some images are not faces at all.
- **Posed and spontaneous expressions mixed**, with whatever demographic skew web image search had in 2013.
- An expression is not an emotion: a smile says nothing certain about how someone feels.
  **Do not use this to make decisions about people** (hiring, policing, grading, health).
"""
)

st.header("Privacy")
st.markdown(
    "Uploaded and camera photos are decoded in memory, classified and discarded: nothing is written to disk, "
    "logged or sent anywhere. Usage statistics are off (`.streamlit/config.toml`)."
)

st.header("Run and retrain")
st.markdown("Run the app, or use the same models from Python or the command line:")
st.code(
    """pip install -r requirements.txt
streamlit run app.py                      # FER_WEIGHTS_DIR / FER_RESULTS_DIR override weights/ and results/
python -m fer_core predict photo.jpg      # the same pipeline on the command line""",
    language="bash",
)
st.markdown("Retrain, evaluate and export (needs `requirements-dev.txt` and FER2013 in `data/fer2013` or `FER_DATA`):")
st.code(
    """python -m fer_core train --model resnet18          # selects the checkpoint on val/
python -m fer_core train --model resnet18 --data my_faces/ --init weights/resnet18.pt --lr 0.005  # fine-tune
python -m fer_core export --runs runs --weights weights
python -m fer_core evaluate --model resnet18 --split test --out results/
python -m fer_core evaluate --model ensemble --split test --out results/
python -m fer_core card                             # weights/NAME.card.json
python -m fer_core report --write README.md         # the README's results and references tables
python -m fer_core bench                            # app speed -> results/bench_app.json""",
    language="bash",
)
