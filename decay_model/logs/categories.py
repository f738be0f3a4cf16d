"""Item -> category maps for logs without a category column (RetailRocket), and joining them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from decay_model.errors import DataValidationError
from decay_model.logs.build import as_text, keep_rows, merge_ids
from decay_model.logs.convert import Where, convert_id, convert_timestamp, plain
from decay_model.logs.schema import ALIAS_TO_COLUMN
from decay_model.logs.tables import open_table

_CATEGORY_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        **{a: c for a, c in ALIAS_TO_COLUMN.items() if c in ("item_id", "category_id")},
        "timestamp": "timestamp",
        "property": "property",
        "value": "value",
    }
)


def load_item_categories(
    paths: Sequence[str | os.PathLike[str]], block_size: int
) -> tuple[np.ndarray | pa.ChunkedArray, np.ndarray | pa.ChunkedArray]:
    """Read item -> category maps: (item_id, category_id) files or RetailRocket item_properties.

    For item_properties only rows with ``property == "categoryid"`` count, and an item's
    latest value wins (by timestamp, then by file order), as the category can change.
    """
    items: list[np.ndarray | pa.Array] = []
    cats: list[np.ndarray | pa.Array] = []
    stamps: list[np.ndarray] = []
    for path_like in paths:
        table = open_table(path_like, _CATEGORY_ALIASES, {2: ("item_id", "category_id")}, "item-category map")
        if {"item_id", "category_id"} <= table.columns.keys():
            wanted: list[str] = ["item_id", "category_id"]
        elif {"item_id", "property", "value"} <= table.columns.keys():
            wanted = ["item_id", "property", "value"]
            if "timestamp" in table.columns:
                wanted.append("timestamp")
        else:
            raise DataValidationError(
                f"{table.name}: not an item-category map ({table.header_text()}); expected "
                "columns item_id,category_id, or RetailRocket's timestamp,itemid,property,value"
            )
        for batch in table.batches(wanted, block_size):
            where = Where(table.name, table.describe, batch.offset, batch.index)
            cols = batch.columns
            if "property" in cols:
                is_cat = pc.equal(pc.utf8_trim_whitespace(plain(cols["property"])), "categoryid")
                mask = pc.fill_null(is_cat, False).to_numpy(zero_copy_only=False)
                if not mask.any():
                    continue
                rows = np.flatnonzero(mask)
                index = rows if batch.index is None else batch.index[rows]
                cols = {c: plain(a).filter(pa.array(mask)) for c, a in cols.items()}
                where = Where(table.name, table.describe, batch.offset, index)
                cols["category_id"] = cols.pop("value")
            items.append(convert_id(cols["item_id"], where, "item_id"))
            cats.append(convert_id(cols["category_id"], where, "category_id"))
            if "timestamp" in cols:
                stamps.append(convert_timestamp(cols["timestamp"], where, "ms")[0])
            else:
                stamps.append(np.zeros(len(cols["item_id"]), dtype=np.int64))
    item, cat = merge_ids(items), merge_ids(cats)
    n = len(item)
    # Keep each item's last row in (timestamp, file) order: the latest category wins.
    order = np.argsort(np.concatenate(stamps), kind="stable") if stamps else np.arange(0)
    key = item.to_numpy() if isinstance(item, pa.ChunkedArray) else item
    is_last = ~pd.Series(key[order]).duplicated(keep="last").to_numpy()
    mask = np.zeros(n, dtype=bool)
    mask[order[is_last]] = True
    kept = keep_rows({"item_id": item, "category_id": cat}, mask)
    return kept["item_id"], kept["category_id"]


def join_categories(
    events_items: np.ndarray | pa.ChunkedArray,
    map_items: np.ndarray | pa.ChunkedArray,
    map_cats: np.ndarray | pa.ChunkedArray,
) -> tuple[np.ndarray | pa.ChunkedArray, np.ndarray]:
    """Look each event's item up in the map; return categories and a found-mask."""
    if isinstance(events_items, np.ndarray) and isinstance(map_items, np.ndarray):
        left, right = events_items, map_items
    else:
        left = as_text(events_items).to_numpy()
        right = as_text(map_items).to_numpy()
    position = pd.Index(right).get_indexer(left)
    found = position >= 0
    take = np.where(found, position, 0)
    if isinstance(map_cats, pa.ChunkedArray):
        cats: np.ndarray | pa.ChunkedArray = (
            map_cats.take(pa.array(take)) if len(map_cats) else pa.chunked_array([], pa.string())
        )
    else:
        cats = map_cats[take] if len(map_cats) else np.zeros(len(left), dtype=np.int64)
    return cats, found
