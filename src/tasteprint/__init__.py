"""tasteprint: structured, verified LLM user profiles and explained recommendations."""

from .api import Tasteprint
from .config import Settings
from .errors import TasteprintError, UnknownUserError
from .models import Event, Item, Recommendation, UserFacts, UserProfile

__all__ = [
    "Event",
    "Item",
    "Recommendation",
    "Settings",
    "Tasteprint",
    "TasteprintError",
    "UnknownUserError",
    "UserFacts",
    "UserProfile",
]
__version__ = "0.1.0"
