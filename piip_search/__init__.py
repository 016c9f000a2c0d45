"""piip-search: neural-architecture search for Parameter-Inverted Image Pyramid networks."""

__version__ = "0.1.0"
