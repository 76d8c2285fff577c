"""Face checks on live visits: the identity gate, the unexpected-face watch and the
re-verification of approved people (``live``: per app; ``visit``: per visit;
``messages``: what people are told and the snapshots)."""

from .live import RECOGNITION, LiveRecognition, setup
from .visit import VisitFaces

__all__ = ["RECOGNITION", "LiveRecognition", "VisitFaces", "setup"]
