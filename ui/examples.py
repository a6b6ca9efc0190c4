"""The Classify page's example photos (fer_core.samples builds them): what each gallery button says
and the file name a result is shown under."""

from __future__ import annotations

from fer_core.samples import sample_photo

EXAMPLES = {  # key -> what the gallery button says
    "astronaut": "Astronaut (one face)",
    "group": "A group of four (generated)",
    "tilted": "Tilted and dim (generated)",
}
FILE_NAMES = {"astronaut": "astronaut.jpg", "group": "group-example.jpg", "tilted": "tilted-example.jpg"}


def example_photo(key: str) -> tuple[str, bytes]:
    """(file name, JPEG bytes) of an example; a KeyError names the known ones."""
    if key not in EXAMPLES:
        raise KeyError(f"unknown example {key!r}; known: {', '.join(EXAMPLES)}")
    return FILE_NAMES[key], sample_photo(key)
