"""What a chat turn reports (`chat --json` prints one `Turn` per line) and the constraints a session
keeps."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tasteprint.explain.evidence import release_year
from tasteprint.models import Item, Recommendation

from .mentions import Stance
from .understanding import UnderstoodBy


def approximate_year(item: Item) -> int | None:
    """The item's year, else the middle of its decade label ("1990s" -> 1995): enough to tell newer from
    older, never stated to the person as a fact."""
    if year := release_year(item):
        return year
    decade = next((d for d in item.attributes.get("decade", []) if d[:4].isdigit()), None)
    return int(decade[:4]) + 5 if decade else None


class Constraints(BaseModel):
    """What the person asked for, kept until cleared."""

    exclude_labels: list[str] = Field(default_factory=list)
    exclude_items: list[str] = Field(default_factory=list)
    min_year: int | None = None
    max_year: int | None = None

    def allows(self, item: Item) -> bool:
        labels = {label.lower() for label in item.labels()}
        if labels & {label.lower() for label in self.exclude_labels} or item.item_id in self.exclude_items:
            return False
        year = approximate_year(item)
        if (self.min_year or self.max_year) and year is None:
            return False
        return not (self.min_year and year < self.min_year) and not (self.max_year and year > self.max_year)


class Subject(BaseModel):
    """A title the line names: the item, the person's stance on it, and where (`span`: [start, end)
    character offsets into the input)."""

    item_id: str
    title: str
    stance: Stance
    span: tuple[int, int]


class LabelMention(BaseModel):
    label: str
    stance: Stance
    span: tuple[int, int]


class SessionState(BaseModel):
    """What a chat session carries from one line to the next, as the service stores it."""

    user_id: str | None = None
    k: int = 5
    last: list[Recommendation] = Field(default_factory=list)
    shown: list[str] = Field(default_factory=list)
    constraints: Constraints = Field(default_factory=Constraints)


class Turn(BaseModel):
    """One exchange, as `chat --json` prints it."""

    input: str
    intent: str
    reply: str
    recommendations: list[dict] = Field(default_factory=list)
    constraints: Constraints
    acts: list[dict] = Field(default_factory=list, description='[{"intent", "item_id" | "label" | "query"}], in order')
    subjects: list[Subject] = Field(default_factory=list, description="every title the line names")
    labels: list[LabelMention] = Field(default_factory=list, description="every catalogue label the line names")
    understood_by: UnderstoodBy = "rules"


def short_name(name: str, words: int = 6) -> str:
    """A name cut to its first few words, so that a question back stays one short sentence."""
    parts = name.split()
    return " ".join(parts[:words]) + ("..." if len(parts) > words else "")
