"""The page as the homepage table stores it, and what produced it. Pure; no Flink."""

from __future__ import annotations

from connectors.homepage_store import MAX_ROWS, HomepageItem, HomepageRow
from jobs.homepage.rows import Row
from jobs.homepage.state import RowsUser
from jobs.models.online import MODEL_VERSION

ROWS_VERSION = "rows-v1"  # bump when the rows' rules or order change meaning


def stored_rows(rows: list[Row]) -> list[HomepageRow]:
    """The page as the homepage table stores it (at most ``MAX_ROWS`` rows)."""
    return [HomepageRow(n, row.row_id, row.title,
                        tuple(HomepageItem(i.title_id, i.score, i.artwork_id, i.reason) for i in row.items), row.token)
            for n, row in enumerate(rows[:MAX_ROWS])]


def model_versions(user: RowsUser) -> dict[str, str]:
    """What produced the page: the rows' rules and the learning job's model state (and its last event)."""
    return {"rows": ROWS_VERSION, "learning_model": MODEL_VERSION, "learning_version": str(user.model_version),
            "learning_last_event": user.model_event_id}
