"""``[serve]``: the HTTP service's settings, from the config file and ``NEXTWATCH_SERVE_*``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.config import load_section
from connectors.errors import ConfigError


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback unless configured: the API has no authentication of its own
    port: int = 8080
    workers: int = 2  # processes, each with its own cache, Cassandra session and catalog replica
    cache_ttl_ms: int = 250  # the most a cached answer is older than Cassandra: the staleness the cache adds
    cache_entries: int = 50_000  # per worker; the least recently stored go first
    read_timeout_s: float = 0.5  # a Cassandra read that takes longer is answered 503
    retry_after_s: int = 1  # what a 503 tells the client to wait
    member_max_age_s: int = 1  # Cache-Control max-age of member answers (homepage, picks)
    title_max_age_s: int = 60  # Cache-Control max-age of title answers (a title, its similar titles)
    max_k: int = 100  # the largest ?k= accepted
    catalog_idle_s: float = 1.0  # the catalog topic is read to an idle gap this long before serving
    demo_actions: bool = False  # the web page's play/finish/rate/search buttons produce real events to Kafka
    log_level: str = "warning"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file_data: Mapping[str, Any] | None = None) -> ServeConfig:
        config = load_section(cls, "serve", env, file_data)
        config.check()
        return config

    def check(self) -> None:
        bounds = {"port": (0, 65_535), "workers": (1, 64), "cache_ttl_ms": (0, 60_000),
                  "cache_entries": (1, 10_000_000), "retry_after_s": (1, 3600), "member_max_age_s": (0, 86_400),
                  "title_max_age_s": (0, 86_400), "max_k": (1, 1000)}
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"[serve] {name}: {value} is outside {low}..{high}")
        if not 0 < self.read_timeout_s <= 10:
            raise ConfigError(f"[serve] read_timeout_s: {self.read_timeout_s} is outside (0, 10]")
