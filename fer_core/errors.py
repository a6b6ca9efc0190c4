"""Errors that users can act on. Each message says what was wrong and what to do."""

from __future__ import annotations


class InvalidImageError(ValueError):
    """An input could not be used as an image (unreadable, not an image, truncated, too large)."""


class InvalidVideoError(InvalidImageError):
    """A clip could not be used (not a video, damaged, longer or larger than the bounds). A kind of
    InvalidImageError, so whatever reports unreadable photos reports unreadable clips the same way."""


class DataLayoutError(ValueError):
    """A data folder or CSV file is not a FER2013 layout this package can read."""


class WeightsError(ValueError):
    """A weights file is missing, unreadable or does not describe a model this package knows."""
