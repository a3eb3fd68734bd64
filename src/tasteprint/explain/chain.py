"""The one chain of LLM stages: facts -> profile -> rerank (with citations) -> reasons.

Serving (`Tasteprint.recommend`), the fit's judge that tunes the rerank blend, the evaluation and batch
profiling all call these methods on one `LLMStages`, built from one `LLMContext`, so a user's prompt
templates and the temperature reach every stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Unpack

from tasteprint.config import ExplanationMode, Settings
from tasteprint.llm import LLMBackend, LLMContext, make_context
from tasteprint.models import Item, Recommendation, UserFacts, UserProfile
from tasteprint.profile.draft import Update, build_profile
from tasteprint.recommend.retrievers import Candidate

from .reasons import ReasonChecker, ReasonStats, resolve_mode, word_recommendations
from .rerank import RerankOptions, RerankResult, RerankStats, rerank


@dataclass
class RecommendResult:
    """What `Tasteprint.recommend` served: the picks, best first, with what the rerank did (`rerank`)
    and, when the model worded the reasons, what happened to them (`reasons`; None otherwise)."""

    recommendations: list[Recommendation]
    rerank: RerankStats = field(default_factory=RerankStats)
    reasons: ReasonStats | None = None


@dataclass(frozen=True)
class LLMStages:
    """The LLM stages over one context.

    Attributes:
        llm: the model, its prompt templates and temperature.
        vocabulary: every label in the catalogue (a profile summary may name only the user's own).
        passes: rerank passes (2 adds one in reversed order against position bias).
        explanations: who words each pick's reason: `auto`, `prose` or `slots` (`Settings.explanations`).
    """

    llm: LLMContext
    vocabulary: frozenset[str] = frozenset()
    passes: int = 1
    explanations: ExplanationMode = "auto"

    @classmethod
    def from_settings(cls, settings: Settings, backend: LLMBackend | None, vocabulary: set[str]) -> LLMStages:
        """The stages as `settings` configure them, over `backend`."""
        return cls(
            make_context(settings, backend),
            frozenset(vocabulary),
            settings.rerank_passes,
            settings.explanations,
        )

    def profile(self, facts: UserFacts, *, verify: bool = True, update: Update | None = None) -> UserProfile:
        """The verified profile drafted from `facts` (see `build_profile`)."""
        return build_profile(facts, self.llm, vocabulary=set(self.vocabulary), verify=verify, update=update)

    def rerank(
        self,
        facts: UserFacts,
        profile: UserProfile | None,
        candidates: list[Candidate],
        items: dict[str, Item],
        evidence: dict[str, list[str]],
        **options: Unpack[RerankOptions],
    ) -> RerankResult:
        """`candidates` reordered by the model's judgement blended with their order: `rerank` with this
        chain's model and passes."""
        return rerank(facts, profile, candidates, items, evidence, self.llm, passes=self.passes, **options)

    def word(
        self,
        facts: UserFacts,
        recommendations: list[Recommendation],
        items: dict[str, Item],
        checker: ReasonChecker,
        *,
        co_liked: Callable[[str, str], int | None],
        label_shares: dict[str, float],
    ) -> tuple[list[Recommendation], ReasonStats]:
        """The picks with the model's reasons where they pass `checker` (see `word_recommendations`)."""
        mode = resolve_mode(self.explanations, self.llm.backend)
        return word_recommendations(
            facts, recommendations, items, self.llm, mode, checker, co_liked=co_liked, label_shares=label_shares
        )
