"""Read real e-commerce behaviour logs into one canonical event schema.

Every later stage of decaygym (the time split, the decay models, the simulated
population) reads a :class:`BehaviourLog`, whose ``events`` frame has exactly
these columns:

============  =======  =========================================================
column        dtype    meaning
============  =======  =========================================================
user_id       int64    user id (factorized to codes when the raw ids were text)
item_id       int64    item id (likewise)
category_id   int64    the item's category id (likewise)
behavior      int8     code into :data:`BEHAVIORS`: 0 view, 1 click, 2 cart,
                       3 fav, 4 buy
timestamp     int64    seconds since 1970-01-01 UTC
duration      float64  optional dwell time; NaN where unknown
============  =======  =========================================================

Rows are sorted stably by ``(user_id, timestamp)``, so events of one user that
share a timestamp keep their file order, and exact duplicate rows are dropped.
Every row that is dropped is counted, by reason, in :class:`LoadReport`.

Each public dataset names its behaviours differently. :data:`SOURCES` maps
them onto the canonical vocabulary (canonical names are accepted for every
source as well):

============  =========================================  ==================================
source        raw behaviour -> canonical                 timestamp
============  =========================================  ==================================
taobao        pv->view, cart, fav, buy                   epoch seconds (UserBehavior.csv,
                                                         which has no header)
tmall         click, cart, fav, buy;                     ``mmdd`` without a year, read as a
              0->click, 1->cart, 2->buy, 3->fav          date in :data:`TMALL_YEAR`
retailrocket  view, addtocart->cart, transaction->buy    epoch milliseconds; no category
                                                         column: pass ``item_categories``
canonical     view, click, cart, fav, buy; codes 0-4     epoch seconds
============  =========================================  ==================================

Any source also accepts ISO 8601 datetimes (time-zone aware ones are converted
to UTC, naive ones are taken as UTC) and date-only values; dates lose the order
of events within a day, so they raise a warning. Bad input raises
:class:`~decay_model.errors.DataValidationError` with a one-line message that
names the file, the column, the first offending line and value, and what was
expected.

The modules, one step each: :mod:`~decay_model.logs.schema` (the columns, the log and its
report), :mod:`~decay_model.logs.sources` (the datasets' vocabularies),
:mod:`~decay_model.logs.tables` (opening a file and reading it in batches),
:mod:`~decay_model.logs.convert` (raw values to canonical dtypes, with
:mod:`~decay_model.logs.messages` for what went wrong), :mod:`~decay_model.logs.categories`
(item -> category maps), :mod:`~decay_model.logs.build` (batches to the cleaned log) and
:mod:`~decay_model.logs.load` (the entry points). Logs larger than memory are Parquet datasets
partitioned by user, read one partition at a time: :mod:`~decay_model.logs.dataset`.
"""

from __future__ import annotations

from decay_model.logs.load import from_frame, load_log
from decay_model.logs.schema import (
    BEHAVIORS,
    COLUMN_ALIASES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    BehaviourLog,
    LoadReport,
    LogWarning,
)
from decay_model.logs.sources import SOURCES, TMALL_YEAR, SourceSpec, describe_sources

__all__ = [
    "BEHAVIORS",
    "COLUMN_ALIASES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SOURCES",
    "TMALL_YEAR",
    "BehaviourLog",
    "LoadReport",
    "LogWarning",
    "SourceSpec",
    "describe_sources",
    "from_frame",
    "load_log",
]
