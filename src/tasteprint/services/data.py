"""The data of one store: ingest files, mine item aspects from reviews, link accounts to people, record
feedback, and forget a user or one item of their history."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tasteprint.errors import UnknownItemError, UnknownUserError
from tasteprint.ingest.aspects import ASPECT_ATTRIBUTE, item_aspects, review_texts
from tasteprint.ingest.loader import ingest as ingest_path
from tasteprint.ingest.loader import read_identity_map
from tasteprint.models import Event, IngestReport, LinkReport

from .workspace import Workspace


class DataService:
    """Writes to the store's events, items and identities, keeping the derived facts current."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace

    def ingest(
        self, path: Path, fmt: str | None, platform: str | None, identity_map: Path | None, mine: bool = True
    ) -> IngestReport:
        """See `Tasteprint.ingest`."""
        report = ingest_path(self.workspace.db, path, fmt, platform, identity_map)
        if mine:
            self.mine_aspects()
        return report

    def mine_aspects(self, events: Iterable[Event] | None = None, progress: bool = True) -> int:
        """Mine item aspects from review text (all stored reviews, or only `events`: the evaluation passes
        its training part, so no held-out review describes an item) and store them as the items'
        `aspect` labels. Returns how many items carry aspects."""
        db = self.workspace.db
        texts = db.review_texts() if events is None else review_texts(events)
        if not texts and not db.generic_aspects():
            return 0
        if progress and texts:
            print(f"mining aspects from the reviews of {len(texts)} items", file=sys.stderr, flush=True)
        aspects, generic = item_aspects(texts, self.workspace.embed)
        count = db.set_item_aspects(aspects, generic, ASPECT_ATTRIBUTE)
        self.workspace.refresh_facts()
        return count

    def link_identities(self, path: Path) -> LinkReport:
        """See `Tasteprint.link_identities`."""
        report = IngestReport()
        links = read_identity_map(path, report)
        moved = self.workspace.db.link_identities(links)
        for (_, account), person in links.items():
            if account != person and not self.workspace.db.has_user(account):
                self.workspace.vectors.delete_profile(account)
        self.workspace.refresh_facts()
        return LinkReport(links=len(links), events_moved=moved, errors=report.errors)

    def forget(self, user_id: str) -> int:
        """See `Tasteprint.forget`."""
        if not self.workspace.db.has_user(user_id):
            raise UnknownUserError(user_id)
        self.workspace.vectors.delete_profile(user_id)
        return self.workspace.db.forget_user(user_id)

    def feedback(self, user_id: str, item_id: str, liked: bool) -> Event:
        """See `Tasteprint.feedback`."""
        db = self.workspace.db
        events = db.user_events(user_id)
        if not events:
            raise UnknownUserError(user_id)
        if not db.items([item_id]):
            raise UnknownItemError(item_id)
        event = Event(
            user_id=user_id,
            item_id=item_id,
            kind="rating",
            rating=5.0 if liked else 1.0,
            timestamp=max(int(time.time()), events[-1].timestamp + 1),
            platform=events[-1].platform,
        )
        db.add_feedback(event)
        return event
