"""The public datasets a log can come from, and how each maps onto the canonical vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from decay_model.errors import ConfigError
from decay_model.logs.schema import BEHAVIORS

TMALL_YEAR: int = 2015
"""Year assumed for Tmall's ``mmdd`` time stamps (the logs cover 2015-05 to 2015-11)."""


@dataclass(frozen=True)
class SourceSpec:
    """How one public dataset writes behaviours and time, mapped onto the canonical schema.

    Attributes:
        name: Key in :data:`SOURCES` and the value of ``LoadReport.source``.
        title: The dataset, for people.
        behavior_map: Raw behaviour value (lower case) -> canonical name in :data:`BEHAVIORS`.
            Canonical names are accepted in addition, for every source.
        timestamp_unit: How integer time stamps are read: ``"s"`` (epoch seconds), ``"ms"``
            (epoch milliseconds) or ``"mmdd"`` (month and day, in :data:`TMALL_YEAR`).
        notes: Caveats worth knowing before fitting anything on this source.
        header_markers: Lower-case header names that only this source uses; they select
            the source when ``source=None``.
    """

    name: str
    title: str
    behavior_map: Mapping[str, str]
    timestamp_unit: str
    notes: str
    header_markers: frozenset[str] = frozenset()

    def vocabulary(self) -> dict[str, int]:
        """Return every accepted raw value (lower case) mapped to its canonical code."""
        vocab = {raw: BEHAVIORS.index(canonical) for raw, canonical in self.behavior_map.items()}
        for code, name in enumerate(BEHAVIORS):
            vocab.setdefault(name, code)
        return vocab

    def accepted(self) -> str:
        """Return the accepted raw values as one short, human-readable list."""
        return ", ".join(self.vocabulary())


SOURCES: Mapping[str, SourceSpec] = MappingProxyType(
    {
        "taobao": SourceSpec(
            name="taobao",
            title="Taobao UserBehavior (Alibaba Tianchi dataset 649)",
            behavior_map=MappingProxyType({"pv": "view", "cart": "cart", "fav": "fav", "buy": "buy"}),
            timestamp_unit="s",
            notes="No header; columns user,item,category,behavior,timestamp. "
            "A few rows fall before the nominal 2017-11-25..2017-12-03 window.",
        ),
        "tmall": SourceSpec(
            name="tmall",
            title="Tmall repeat buyers (user_log_format1.csv)",
            behavior_map=MappingProxyType(
                {
                    "click": "click",
                    "cart": "cart",
                    "fav": "fav",
                    "buy": "buy",
                    "0": "click",
                    "1": "cart",
                    "2": "buy",
                    "3": "fav",
                }
            ),
            timestamp_unit="mmdd",
            notes=f"time_stamp is month-day (1111 = 11 Nov) without a year: read in {TMALL_YEAR}; "
            "date-only, so repeats within a day collapse as exact duplicates.",
            header_markers=frozenset({"time_stamp", "action_type", "seller_id", "brand_id"}),
        ),
        "retailrocket": SourceSpec(
            name="retailrocket",
            title="RetailRocket e-commerce events (events.csv)",
            behavior_map=MappingProxyType({"view": "view", "addtocart": "cart", "transaction": "buy"}),
            timestamp_unit="ms",
            notes="No category column: pass item_categories (item_id,category_id, or "
            "item_properties*.csv, whose latest categoryid per item is used).",
            header_markers=frozenset({"visitorid", "transactionid"}),
        ),
        "canonical": SourceSpec(
            name="canonical",
            title="decaygym's own schema",
            behavior_map=MappingProxyType(
                {
                    **{name: name for name in BEHAVIORS},
                    **{str(code): name for code, name in enumerate(BEHAVIORS)},
                }
            ),
            timestamp_unit="s",
            notes="What from_frame and the synthetic generator produce; behaviour codes 0-4 "
            "are accepted as well as names.",
        ),
    }
)
"""Known sources, by name. The :mod:`decay_model.logs` docstring tables them."""


def describe_sources() -> str:
    """Return :data:`SOURCES` as a Markdown table, so the documentation cannot drift from the code."""
    units = {
        "s": "epoch seconds",
        "ms": "epoch milliseconds",
        "mmdd": f"`mmdd`, read in {TMALL_YEAR} (date-only)",
    }
    lines = [
        "| source | dataset | behaviour values -> canonical | timestamp | notes |",
        "|---|---|---|---|---|",
    ]
    for spec in SOURCES.values():
        mapping = ", ".join(
            f"`{raw}`" if raw == canonical else f"`{raw}`->`{canonical}`"
            for raw, canonical in spec.behavior_map.items()
        )
        lines.append(
            f"| `{spec.name}` | {spec.title} | {mapping} | {units[spec.timestamp_unit]} | {spec.notes} |"
        )
    return "\n".join(lines)


def resolve_source(source: str | None) -> SourceSpec | None:
    """Look ``source`` up in :data:`SOURCES`, raising ConfigError with the known names."""
    if source is None:
        return None
    spec = SOURCES.get(str(source).strip().lower())
    if spec is None:
        raise ConfigError(
            f"unknown log source {source!r}; known sources: {', '.join(SOURCES)} (or None to detect it)"
        )
    return spec
