"""The app's colours."""

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and on photos.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
