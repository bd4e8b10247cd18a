"""Impressions -> clicks -> plays, joined by impression id: the one place rewards are defined.

A BrowseEvent IMPRESSION shows a row (its items, each with its artwork) and echoes the
homepage's presentation token; a CLICK names the impression and the title; a PlayEvent
START of that title in the same session (within ``window_ms`` of the click) is a play.
When an impression is older than the window it is final: one :class:`Outcome` per shown
item, with the propensities the token recorded, for the bandits to learn from and for
off-policy evaluation. Per member and small (keyed state): at most ``max_pending``
impressions are held; an older one is finalized early rather than dropped.

>>> join = ImpressionJoin(window_ms=60_000)
>>> join.impression("imp-1", "top_picks", 0, [("heat", 0, "heat-art0"), ("alien", 1, "alien-art1")],
...                 PresentationToken("rows-eg-1", 0.9, (0.95, 0.05), (False, True)), at_ms=0)
>>> join.click("imp-1", "alien", at_ms=5_000)
>>> join.play("alien", at_ms=9_000)
>>> [(o.title_id, o.clicked, o.played, o.item_propensity, o.explored) for o in join.expire(now_ms=61_000)]
[('heat', False, False, 0.95, False), ('alien', True, True, 0.05, True)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PresentationToken:
    """What the homepage says about how a row was chosen; impressions echo it back verbatim.

    Encoded as ``v1;<policy version>;<row propensity>;<item propensities,>;<explored flags>``,
    short enough to ride on every impression.

    >>> token = PresentationToken("rows-eg-1+art-eg-1", 0.75, (0.9, 0.02), (False, True))
    >>> token.encode()
    'v1;rows-eg-1+art-eg-1;0.75;0.9,0.02;01'
    >>> PresentationToken.decode(token.encode()) == token
    True
    """

    policy_version: str
    row_propensity: float  # the probability the row was put at its position
    item_propensities: tuple[float, ...]  # per slot: the probability of that title (and its artwork) there
    explored: tuple[bool, ...]  # per slot: an exploration pick

    def __post_init__(self) -> None:
        if len(self.item_propensities) != len(self.explored):
            raise ValueError(f"a token needs one explored flag per item propensity, got "
                             f"{len(self.item_propensities)} propensities and {len(self.explored)} flags")
        for p in (self.row_propensity, *self.item_propensities):
            if not 0 < p <= 1:
                raise ValueError(f"a propensity must be in (0, 1], got {p}")
        if ";" in self.policy_version:
            raise ValueError(f"a policy version may not contain ';': {self.policy_version!r}")

    def encode(self) -> str:
        items = ",".join(f"{p:.6g}" for p in self.item_propensities)
        flags = "".join("1" if e else "0" for e in self.explored)
        return f"v1;{self.policy_version};{self.row_propensity:.6g};{items};{flags}"

    @classmethod
    def decode(cls, text: str) -> PresentationToken:
        parts = text.split(";")
        if len(parts) != 5 or parts[0] != "v1":
            raise ValueError(f"not a v1 presentation token (v1;policy;row;items;flags): {text!r}")
        try:
            items = tuple(float(p) for p in parts[3].split(",")) if parts[3] else ()
            row = float(parts[2])
        except ValueError as exc:
            raise ValueError(f"presentation token with a propensity that is not a number: {text!r}") from exc
        if set(parts[4]) - {"0", "1"}:
            raise ValueError(f"presentation token flags must be 0 or 1: {text!r}")
        return cls(parts[1], row, items, tuple(c == "1" for c in parts[4]))


@dataclass(frozen=True)
class Outcome:
    """One shown item, final: whether it was clicked and played, and how it had been chosen."""

    impression_id: str
    row_id: str
    row_position: int
    title_id: str
    position: int
    artwork_id: str
    clicked: bool
    played: bool
    policy_version: str  # "" when the impression carried no token (not served by a logged policy)
    row_propensity: float
    item_propensity: float
    explored: bool
    shown_ms: int


@dataclass
class _Pending:
    impression_id: str
    row_id: str
    row_position: int
    items: list[tuple[str, int, str]]
    token: PresentationToken | None
    shown_ms: int
    clicked: dict[str, int] = field(default_factory=dict)  # title -> click time
    played: set[str] = field(default_factory=set)


class ImpressionJoin:
    """One member's impressions waiting for their clicks and plays (keyed state; pickles small)."""

    def __init__(self, window_ms: int = 30 * 60_000, max_pending: int = 50) -> None:
        if window_ms <= 0 or max_pending < 1:
            raise ValueError(f"window_ms must be > 0 and max_pending >= 1, got {window_ms}, {max_pending}")
        self.window_ms, self.max_pending = window_ms, max_pending
        self.pending: dict[str, _Pending] = {}  # oldest first
        self.early: list[Outcome] = []  # finalized before their window closed (too many pending)

    def impression(self, impression_id: str, row_id: str, row_position: int,
                   items: Sequence[tuple[str, int, str]], token: PresentationToken | None, at_ms: int) -> None:
        """A row was shown: (title_id, position in row, artwork_id) per item. A repeated id is a duplicate."""
        if impression_id in self.pending:
            return
        if token is not None and len(token.item_propensities) not in (0, len(items)):
            token = None  # a token that does not describe this row cannot be trusted for evaluation
        self.pending[impression_id] = _Pending(impression_id, row_id, row_position, list(items), token, at_ms)
        while len(self.pending) > self.max_pending:
            self.early.extend(self._final(self.pending.pop(next(iter(self.pending)))))

    def click(self, impression_id: str, title_id: str, at_ms: int) -> None:
        shown = self.pending.get(impression_id)
        if shown is not None and any(t == title_id for t, _, _ in shown.items):
            shown.clicked.setdefault(title_id, at_ms)

    def play(self, title_id: str, at_ms: int) -> None:
        """A play started: it rewards the latest click on that title within the window."""
        for shown in reversed(self.pending.values()):
            clicked_at = shown.clicked.get(title_id)
            if clicked_at is not None and 0 <= at_ms - clicked_at <= self.window_ms:
                shown.played.add(title_id)
                return

    def expire(self, now_ms: int) -> list[Outcome]:
        """The outcomes of every impression whose window has closed (and of any finalized early)."""
        out, self.early = self.early, []
        for impression_id in [i for i, p in self.pending.items() if now_ms - p.shown_ms >= self.window_ms]:
            out.extend(self._final(self.pending.pop(impression_id)))
        return out

    def _final(self, shown: _Pending) -> list[Outcome]:
        token = shown.token
        outcomes = []
        for slot, (title_id, position, artwork_id) in enumerate(shown.items):
            has_item = token is not None and slot < len(token.item_propensities)
            outcomes.append(Outcome(
                shown.impression_id, shown.row_id, shown.row_position, title_id, position, artwork_id,
                title_id in shown.clicked, title_id in shown.played,
                token.policy_version if token else "", token.row_propensity if token else 1.0,
                token.item_propensities[slot] if has_item and token else 1.0,
                token.explored[slot] if has_item and token else False, shown.shown_ms))
        return outcomes


def outcome_record(user_id: str, outcome: Outcome, context: str, weekday: str, now_ms: int) -> dict[str, object]:
    """The impression-outcomes record (``schemas/impression_outcome.v1.avsc``) of one outcome."""
    return {
        "schema_version": 1, "event_id": f"{outcome.impression_id}:{outcome.position}", "user_id": user_id,
        "impression_id": outcome.impression_id, "row_id": outcome.row_id, "row_position": outcome.row_position,
        "title_id": outcome.title_id, "position": outcome.position, "artwork_id": outcome.artwork_id,
        "clicked": outcome.clicked, "played": outcome.played, "policy_version": outcome.policy_version,
        "row_propensity": outcome.row_propensity, "item_propensity": outcome.item_propensity,
        "explored": outcome.explored, "context": context, "weekday": weekday, "shown_ms": outcome.shown_ms,
        "ingest_time_ms": now_ms}
