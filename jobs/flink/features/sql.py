"""The feature job's Flink SQL: session windows, trending top-N per scope, item stats running totals.

Windows run in SQL because Flink's SQL windows are fast here and Python windows slow. They read the
``enriched`` view: every applied event as the user features step saw it (see ``operators.ENRICHED_FIELDS``).
"""

from __future__ import annotations

from jobs.flink.features.config import FeatureJobConfig


def queries(settings: FeatureJobConfig) -> dict[str, str]:
    """The job's Flink SQL over the ``enriched`` view (the user features step's side output), by name."""
    gap = settings.session_gap_minutes
    return {
        "sessions": f"""
SELECT user_id, first_event_ms, last_event_ms, plays, completes, titles_played, watch_ms, impressions, clicks,
  searches, events, genres_csv, device_class, utc_offset_minutes
FROM (
  SELECT user_id, window_start, window_end,
    MIN(event_time_ms) AS first_event_ms, MAX(event_time_ms) AS last_event_ms,
    CAST(SUM(CASE WHEN action = 'START' THEN 1 ELSE 0 END) AS INT) AS plays,
    CAST(SUM(CASE WHEN action = 'COMPLETE' THEN 1 ELSE 0 END) AS INT) AS completes,
    CAST(COUNT(DISTINCT CASE WHEN action = 'START' THEN title_id END) AS INT) AS titles_played,
    SUM(watch_ms) AS watch_ms,
    CAST(SUM(CASE WHEN action = 'IMPRESSION' THEN CARDINALITY(shown) ELSE 0 END) AS INT) AS impressions,
    CAST(SUM(CASE WHEN MOD(joined, 2) = 1 THEN 1 ELSE 0 END) AS INT) AS clicks,
    CAST(SUM(CASE WHEN kind = 'search' THEN 1 ELSE 0 END) AS INT) AS searches,
    CAST(COUNT(*) AS INT) AS events,
    LISTAGG(genres_csv) AS genres_csv,
    MAX(device_class) AS device_class,
    MAX(utc_offset_minutes) AS utc_offset_minutes
  FROM TABLE(SESSION(TABLE enriched PARTITION BY user_id, DESCRIPTOR(rowtime), INTERVAL '{gap}' MINUTES))
  GROUP BY user_id, window_start, window_end
)""",
        "trending": f"""
SELECT trend_scope, CAST(rn AS INT), title_id, plays, CAST(window_end AS STRING) FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, trend_scope ORDER BY plays DESC, title_id) AS rn
  FROM (
    SELECT window_start, window_end, trend_scope, title_id, COUNT(*) AS plays
    FROM TABLE(HOP(TABLE trend_input, DESCRIPTOR(rowtime), INTERVAL '{settings.trending_slide_minutes}' MINUTES,
                   INTERVAL '{settings.trending_window_minutes}' MINUTES))
    GROUP BY window_start, window_end, trend_scope, title_id
  )
) WHERE rn <= {settings.trending_top_n}
  -- trending is about now: a backfill does not rewrite every window of its past
  AND window_end >= NOW() - INTERVAL '{settings.trending_horizon_hours}' HOUR""",
        "trend_input": """
SELECT rowtime, 'global' AS trend_scope, title_id FROM enriched WHERE action = 'START'
UNION ALL
SELECT rowtime, CONCAT('genre:', g) AS trend_scope, title_id FROM enriched CROSS JOIN UNNEST(genres) AS t (g)
WHERE action = 'START'
UNION ALL
SELECT rowtime, CONCAT('context:', context) AS trend_scope, title_id FROM enriched WHERE action = 'START'""",
        "item_stats": """
SELECT title_id, artwork_id, CAST(GROUPING(artwork_id) AS INT) AS is_total, SUM(imp) AS impressions,
       SUM(clk) AS clicks, SUM(starts) AS plays, SUM(completes) AS completes, SUM(took) AS impression_plays
FROM (
  SELECT SPLIT_INDEX(item, '|', 0) AS title_id,
         COALESCE(NULLIF(SPLIT_INDEX(item, '|', 1), ''), 'default') AS artwork_id,
         1 AS imp, 0 AS clk, 0 AS starts, 0 AS completes, 0 AS took
  FROM enriched CROSS JOIN UNNEST(shown) AS s (item) WHERE action = 'IMPRESSION'
  UNION ALL
  -- clicks and the plays they led to, joined by impression id; the artwork is the one the impression showed
  SELECT title_id, COALESCE(NULLIF(artwork_id, ''), 'default'), 0,
         CASE WHEN MOD(joined, 2) = 1 THEN 1 ELSE 0 END, 0, 0,
         CASE WHEN joined >= 2 THEN 1 ELSE 0 END
  FROM enriched WHERE joined <> 0
  UNION ALL
  SELECT title_id, CAST(NULL AS STRING), 0, 0, 1, 0, 0 FROM enriched WHERE action = 'START'
  UNION ALL
  SELECT title_id, CAST(NULL AS STRING), 0, 0, 0, 1, 0 FROM enriched WHERE action = 'COMPLETE'
)
GROUP BY GROUPING SETS ((title_id, artwork_id), (title_id))
HAVING GROUPING(artwork_id) = 1 OR artwork_id IS NOT NULL""",
    }
