"""Segments of one store's profiled users: build them (k-means, described by the LLM) and save them in
the store, and the prior they give a cold user: popular items carrying the nearest segment's interests."""

from __future__ import annotations

import numpy as np

from tasteprint.errors import TasteprintError
from tasteprint.profile.segments import Segmentation, build_segments, nearest_segment
from tasteprint.storage.embeddings import profile_text

from .fitting import FittingService
from .workspace import Workspace

SEGMENT_PRIOR_DEPTH = 2000  # popular items searched for ones carrying the segment's interests


class SegmentService:
    """Owns the store's `segments.json`."""

    def __init__(self, workspace: Workspace, fitting: FittingService):
        self.workspace = workspace
        self.fitting = fitting
        self.file = workspace.store / "segments.json"

    def build(self, k: int | str = "auto", seed: int | None = None) -> Segmentation:
        """k-means segments of every profiled user (k by silhouette with "auto"), each described by the
        LLM from its members' verified interests; saved in the store as the prior for cold users."""
        ws = self.workspace
        user_ids = ws.db.profiles.users()
        profiles = [ws.db.profiles.latest(u) for u in user_ids]
        facts = [ws.factbook.facts(u) for u in user_ids]
        if not profiles:
            raise TasteprintError("no profiled users to segment", hint="run `tasteprint profile --all` first")
        embeddings = ws.embed([profile_text(p) for p in profiles])
        segmentation = build_segments(
            profiles,
            facts,
            embeddings,
            ws.stages().llm,
            k=k,
            seed=ws.settings.seed if seed is None else seed,
            vocabulary=set(ws.factbook.global_shares),
        )
        segmentation.data_version = ws.db.data_version()
        partial = self.file.with_suffix(".tmp")
        partial.write_text(segmentation.model_dump_json())
        partial.replace(self.file)  # a reader never sees half a file
        return segmentation

    def prior(self, query: np.ndarray | None, exclude: set[str]) -> list[str]:
        """Popular items (not in `exclude`) carrying the top interests of the segment nearest to `query`;
        empty when no segments were built or the user has nothing to place them by."""
        if query is None or not self.file.exists():
            return []
        segment = nearest_segment(Segmentation.model_validate_json(self.file.read_text()), query)
        wanted = {i.label for i in segment.top_interests}
        popular = [i for i in self.fitting.get().single("pop", [], n=SEGMENT_PRIOR_DEPTH) if i not in exclude]
        items = self.workspace.db.items(popular)
        return [i for i in popular if i in items and wanted & set(items[i].labels())]
