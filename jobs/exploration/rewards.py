"""Impressions -> clicks -> plays, joined by impression id: the one place rewards are defined.

A BrowseEvent IMPRESSION shows a row (its items, each with its artwork) and echoes the
homepage's presentation token; a CLICK names the impression and the title; a PlayEvent
START of that title after the click is a play; both count within ``window_ms`` of the
impression (one session).

Two readers use the same join:

- the rows job waits until an impression is older than the window; then it is final:
  one :class:`Outcome` per shown item, with the propensities the token recorded, for the
  bandits to learn from and for off-policy evaluation (:meth:`ImpressionJoin.expire`);
- the feature job counts CTR and take rate per title and artwork as soon as each piece
  is known: ``click`` and ``play`` return the :class:`Joined` clicks and plays they add
  (the artwork is the one the impression showed), and :meth:`ImpressionJoin.forget`
  drops what can no longer join.

Browse and play events travel on different topics, so a START may be seen before the
CLICK it follows: the join remembers recent starts (at most ``max_starts``), and a
late-arriving click still earns its play. Per member and small (keyed state): at most
``max_pending`` impressions are held; an older one is finalized early rather than dropped.

>>> join = ImpressionJoin(window_ms=60_000)
>>> join.impression("imp-1", "top_picks", 0, [("heat", 0, "heat-art0"), ("alien", 1, "alien-art1")],
...                 PresentationToken("rows-eg-1", 0.9, (0.95, 0.05), (False, True)), at_ms=0)
>>> join.click("imp-1", "alien", at_ms=5_000)
[Joined(kind='CLICK', impression_id='imp-1', title_id='alien', artwork_id='alien-art1')]
>>> join.play("alien", at_ms=9_000)
[Joined(kind='PLAY', impression_id='imp-1', title_id='alien', artwork_id='alien-art1')]
>>> [(o.title_id, o.clicked, o.played, o.item_propensity, o.explored) for o in join.expire(now_ms=61_000)]
[('heat', False, False, 0.95, False), ('alien', True, True, 0.05, True)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.events import BrowseEvent, PlayEvent
from connectors.state import Versioned

REWARD_WINDOW_MS = 30 * 60_000  # one session: clicks and plays this long after an impression are its own


@dataclass(frozen=True)
class PresentationToken:
    """What the homepage says about how a row was chosen; impressions echo it back verbatim.

    Encoded as ``v1;<policy version>;<row propensity>;<item propensities,>;<explored flags>``,
    short enough to ride on every impression; a page built under experiments adds
    ``;<experiment:variant,...>`` as ``v2`` (a page without any still writes ``v1``, and both decode).

    >>> token = PresentationToken("rows-eg-1+art-eg-1", 0.75, (0.9, 0.02), (False, True))
    >>> token.encode()
    'v1;rows-eg-1+art-eg-1;0.75;0.9,0.02;01'
    >>> PresentationToken.decode(token.encode()) == token
    True
    >>> tested = PresentationToken("rows-eg-1+art-eg-1", 1.0, (1.0,), (False,), ("diversity:more",))
    >>> tested.encode(), PresentationToken.decode(tested.encode()) == tested
    ('v2;rows-eg-1+art-eg-1;1;1;0;diversity:more', True)
    """

    policy_version: str
    row_propensity: float  # the probability the row was put at its position
    item_propensities: tuple[float, ...]  # per slot: the probability of that title (and its artwork) there
    explored: tuple[bool, ...]  # per slot: an exploration pick
    experiments: tuple[str, ...] = ()  # experiment:variant of each experiment the page was built under

    def __post_init__(self) -> None:
        if len(self.item_propensities) != len(self.explored):
            raise ValueError(f"a token needs one explored flag per item propensity, got "
                             f"{len(self.item_propensities)} propensities and {len(self.explored)} flags")
        for p in (self.row_propensity, *self.item_propensities):
            if not 0 < p <= 1:
                raise ValueError(f"a propensity must be in (0, 1], got {p}")
        if ";" in self.policy_version:
            raise ValueError(f"a policy version may not contain ';': {self.policy_version!r}")
        for label in self.experiments:
            if not label or ";" in label or "," in label:
                raise ValueError(f"an experiment label is non-empty, without ';' or ',': {label!r}")

    def encode(self) -> str:
        items = ",".join(f"{p:.6g}" for p in self.item_propensities)
        flags = "".join("1" if e else "0" for e in self.explored)
        if self.experiments:
            return f"v2;{self.policy_version};{self.row_propensity:.6g};{items};{flags};{','.join(self.experiments)}"
        return f"v1;{self.policy_version};{self.row_propensity:.6g};{items};{flags}"

    @classmethod
    def decode(cls, text: str) -> PresentationToken:
        parts = text.split(";")
        if (parts[0], len(parts)) not in (("v1", 5), ("v2", 6)):
            raise ValueError(f"not a presentation token (v1;policy;row;items;flags or v2;...;flags;experiments): "
                             f"{text!r}")
        try:
            items = tuple(float(p) for p in parts[3].split(",")) if parts[3] else ()
            row = float(parts[2])
        except ValueError as exc:
            raise ValueError(f"presentation token with a propensity that is not a number: {text!r}") from exc
        if set(parts[4]) - {"0", "1"}:
            raise ValueError(f"presentation token flags must be 0 or 1: {text!r}")
        experiments = tuple(parts[5].split(",")) if len(parts) == 6 else ()
        return cls(parts[1], row, items, tuple(c == "1" for c in parts[4]), experiments)


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
    experiments: tuple[str, ...] = ()  # from the token: the experiments the page was built under


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


@dataclass(frozen=True)
class Joined:
    """A click on a shown title, or the play it led to, as soon as the join sees it."""

    kind: Literal["CLICK", "PLAY"]
    impression_id: str
    title_id: str
    artwork_id: str  # the variant the impression showed ("" when it named none)


class ImpressionJoin(Versioned):
    """One member's impressions waiting for their clicks and plays (keyed state; pickles small)."""

    STATE_VERSION = 1

    def __init__(self, window_ms: int = REWARD_WINDOW_MS, max_pending: int = 50, max_starts: int = 20) -> None:
        if window_ms <= 0 or max_pending < 1 or max_starts < 0:
            raise ValueError(f"window_ms must be > 0, max_pending >= 1 and max_starts >= 0, got {window_ms}, "
                             f"{max_pending}, {max_starts}")
        self.window_ms, self.max_pending, self.max_starts = window_ms, max_pending, max_starts
        self.pending: dict[str, _Pending] = {}  # oldest first
        self.early: list[Outcome] = []  # finalized before their window closed (too many pending)
        # (title, time, impression named or "") of recent STARTs, for clicks read after them
        self.starts: list[tuple[str, int, str]] = []
        self.browse_ms = 0  # the newest impression or click seen: the member's browse topic has reached it
        self.play_ms = 0  # the newest start seen: their play topic has reached it

    def state_fields(self) -> tuple[Any, ...]:
        return (self.window_ms, self.max_pending, self.max_starts, self.pending, self.early, self.starts,
                self.browse_ms, self.play_ms)

    def restore(self, fields: tuple[Any, ...]) -> None:
        (self.window_ms, self.max_pending, self.max_starts, self.pending, self.early, self.starts, self.browse_ms,
         self.play_ms) = fields

    @staticmethod
    def _from_field_dict(fields: tuple[Any, ...]) -> tuple[Any, ...]:
        """Version 0 (the object's dict), in any of its shapes: starts were added later, and later still the
        impression a start names; the topics' progress marks and the bound on starts came with them."""
        (state,) = fields
        starts = [(*start, "")[:3] for start in state.get("starts", [])]
        return (state["window_ms"], state["max_pending"], state.get("max_starts", 20), state["pending"],
                state["early"], starts, state.get("browse_ms", 0), state.get("play_ms", 0))

    def impression(self, impression_id: str, row_id: str, row_position: int,
                   items: Sequence[tuple[str, int, str]], token: PresentationToken | None, at_ms: int) -> None:
        """A row was shown: (title_id, position in row, artwork_id) per item. A repeated id is a duplicate."""
        self.browse_ms = max(self.browse_ms, at_ms)
        if impression_id in self.pending:
            return
        if token is not None and len(token.item_propensities) not in (0, len(items)):
            token = None  # a token that does not describe this row cannot be trusted for evaluation
        self.pending[impression_id] = _Pending(impression_id, row_id, row_position, list(items), token, at_ms)
        while len(self.pending) > self.max_pending:
            self.early.extend(self._final(self.pending.pop(next(iter(self.pending)))))

    def click(self, impression_id: str, title_id: str, at_ms: int) -> list[Joined]:
        """A click on an impression: the click it adds (none if the impression did not show the title
        or the title was clicked there before), and its play when that START was seen already."""
        self.browse_ms = max(self.browse_ms, at_ms)
        shown = self.pending.get(impression_id)
        if shown is None or title_id in shown.clicked or at_ms - shown.shown_ms > self.window_ms:
            return []
        artwork = next((a for t, _, a in shown.items if t == title_id), None)
        if artwork is None:
            return []
        shown.clicked[title_id] = at_ms
        joined = [Joined("CLICK", impression_id, title_id, artwork)]
        if any(t == title_id and at_ms <= started <= shown.shown_ms + self.window_ms and named in ("", impression_id)
               for t, started, named in self.starts):
            shown.played.add(title_id)
            joined.append(Joined("PLAY", impression_id, title_id, artwork))
        return joined

    def play(self, title_id: str, at_ms: int, impression_id: str | None = None) -> list[Joined]:
        """A play started: it rewards a click on that title, once, if within the impression's window.

        The click on the impression the START names (``PlayEvent.impression_id``), or when it
        names none, the latest click on the title.
        """
        self.play_ms = max(self.play_ms, at_ms)
        self.starts.append((title_id, at_ms, impression_id or ""))
        if len(self.starts) > self.max_starts:
            self.starts.remove(min(self.starts, key=lambda start: start[1]))
        if impression_id:
            candidates = [self.pending[impression_id]] if impression_id in self.pending else []
        else:
            candidates = list(reversed(self.pending.values()))  # the latest click first
        for shown in candidates:
            clicked_at = shown.clicked.get(title_id)
            if clicked_at is not None and clicked_at <= at_ms <= shown.shown_ms + self.window_ms:
                if title_id in shown.played:
                    return []
                shown.played.add(title_id)
                artwork = next(a for t, _, a in shown.items if t == title_id)
                return [Joined("PLAY", shown.impression_id, title_id, artwork)]
        return []

    def forget(self, watermark_ms: int, out_of_order_ms: int = 0) -> None:
        """Drop what no event to come can join any more.

        For a reader that takes :class:`Joined` and never the outcomes (the feature job):

        - an event behind the watermark is late and never reaches the join: an impression whose
          window closed before the watermark is done, and so is a start before it;
        - a member's events arrive in order on each of their partitions (up to
          ``out_of_order_ms``): once their browse events have passed an impression's window no
          click on it can come, and once their play starts have passed it, no play. An impression
          whose clicks may still get their plays keeps only the clicked titles.

        The second rule keeps the state small when the watermark lags far behind, as in a
        backfill, where partitions are read at different speeds and there is no watermark
        until every one has been read.
        """
        self.early = []
        browsed, played = self.browse_ms - out_of_order_ms, self.play_ms - out_of_order_ms
        for impression_id, shown in list(self.pending.items()):
            closes = shown.shown_ms + self.window_ms
            if closes >= browsed and closes >= watermark_ms:
                continue  # clicks may still come
            if closes < watermark_ms or closes < played or shown.played.issuperset(shown.clicked):
                del self.pending[impression_id]
            elif len(shown.items) > len(shown.clicked):
                shown.items = [item for item in shown.items if item[0] in shown.clicked]
        horizon = max(watermark_ms, browsed)
        self.starts = [start for start in self.starts if start[1] >= horizon]

    def expire(self, now_ms: int) -> list[Outcome]:
        """The outcomes of every impression whose window has closed (and of any finalized early)."""
        out, self.early = self.early, []
        for impression_id in [i for i, p in self.pending.items() if now_ms - p.shown_ms >= self.window_ms]:
            out.extend(self._final(self.pending.pop(impression_id)))
        self.starts = [start for start in self.starts if now_ms - start[1] < self.window_ms]
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
                token.explored[slot] if has_item and token else False, shown.shown_ms,
                token.experiments if token else ()))
        return outcomes


def observe(join: ImpressionJoin, event: Any) -> list[Joined]:
    """Feed one user event to the join: impressions, clicks and play starts; the clicks and plays it joined.

    An impression whose token this version cannot read still counts, unlogged (no propensities).
    """
    if isinstance(event, BrowseEvent):
        if event.action == "IMPRESSION":
            try:
                token = PresentationToken.decode(event.presentation_token) if event.presentation_token else None
            except ValueError:
                token = None
            items = [(i.title_id, i.position_in_row, i.artwork_id or "") for i in event.items]
            join.impression(event.impression_id, event.row_id or "", event.row_position or 0, items, token,
                            event.event_time_ms)
        elif event.action == "CLICK" and event.title_id:
            return join.click(event.impression_id, event.title_id, event.event_time_ms)
    elif isinstance(event, PlayEvent) and event.action == "START":
        return join.play(event.title_id, event.event_time_ms, event.impression_id)
    return []


def joins(event: Any) -> bool:
    """Whether ``observe`` would look at this event (so a job reads the join's state only for these)."""
    return (isinstance(event, BrowseEvent) and event.action in ("IMPRESSION", "CLICK")) or (
        isinstance(event, PlayEvent) and event.action == "START")


ImpressionJoin.MIGRATIONS = {0: ImpressionJoin._from_field_dict}
