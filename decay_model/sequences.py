"""The data pipeline of NeuralDecay: padded per-user batches built lazily from a log.

A *group* is one (user, cutoff T): the user's event sequence before T (the
most recent ``max_len`` events, every category) and the *candidates*, the
categories the user engaged with before T (exactly the EvalTask examples of
that user at that cutoff). Each candidate also carries its own most recent
``max_cat_events`` events in its category, for the explicit decay sum.

Only flat, unpadded event arrays are kept in memory; padded tensors are built
per batch (:meth:`GroupData.batch`), so a large log never holds every padded
sequence at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from decay_model.logs.schema import BehaviourLog
from decay_model.task import HOUR, EvalTask

PAD = 0  # category / behaviour index reserved for padding
OOV = 1  # category index of categories outside the vocabulary
#: A pair's events further apart than this start a new session of the user in that category.
SESSION_GAP_HOURS = 1.0
#: Candidate features per example, in ``cand_feat`` order (all log1p-scaled): the first five are read by
#: every NeuralDecay; the last two only with ``session_features`` (see decay_model.neural).
CAND_FEATURES = (
    "pair_events",  # the pair's events before T
    "pair_age",  # hours since the pair's newest event
    "user_events",  # the user's events before T, any category
    "user_age",  # hours since the user's newest event
    "user_day",  # the user's events in the last day (within the max_len read)
    "pair_sessions",  # the pair's sessions before T (events > SESSION_GAP_HOURS apart)
    "pair_span",  # hours since the pair's first event
)


class EventIndex:
    """A log's events indexed by user (for sequences) and by (user, category) pair (for candidates)."""

    def __init__(self, log: BehaviourLog) -> None:
        ev = log.events
        users = ev["user_id"].to_numpy().astype(np.int64)
        ts = ev["timestamp"].to_numpy().astype(np.int64)
        cats = ev["category_id"].to_numpy().astype(np.int64)
        beh = ev["behavior"].to_numpy().astype(np.int64)
        order = np.lexsort((ts, users))
        self.user_of = users[order]
        self.ts = ts[order]
        self.cat = cats[order]
        self.beh = beh[order]
        self.users, self.user_start = np.unique(self.user_of, return_index=True)
        self.user_end = np.append(self.user_start[1:], len(order))
        self._t0 = int(ts.min()) - 1
        self._span = int(ts.max()) - self._t0 + 2
        upos = np.searchsorted(self.users, self.user_of)
        self._ukey = upos * self._span + (self.ts - self._t0)
        # Pair view: sorted by (user, category, time), one strictly increasing key for searches.
        porder = np.lexsort((ts, cats, users))
        pu, pc = users[porder], cats[porder]
        self.pair_ts = ts[porder]
        self.pair_beh = beh[porder]
        new = np.ones(len(porder), dtype=bool)
        new[1:] = (pu[1:] != pu[:-1]) | (pc[1:] != pc[:-1])
        self.pair_start = np.flatnonzero(new)
        self.pair_user = pu[self.pair_start]
        self.pair_cat = pc[self.pair_start]
        pair_of_event = np.cumsum(new) - 1
        self._key = pair_of_event * self._span + (self.pair_ts - self._t0)
        # A session of the pair starts at its first event and after every gap > SESSION_GAP_HOURS;
        # repeated views inside one visit are one return to the category, not several.
        gap = np.diff(self.pair_ts, prepend=self.pair_ts[:1])
        self.pair_new_session = new | (gap > SESSION_GAP_HOURS * HOUR)
        self.pair_sessions_cum = np.cumsum(self.pair_new_session)  # sessions up to each event, all pairs

    def user_pos(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each user in :attr:`users`; every id must be present."""
        return np.searchsorted(self.users, user_ids)

    def pair_count_before(self, pairs: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
        """Events of each pair strictly before its cutoff."""
        offset = np.clip(cutoffs - self._t0, 0, self._span - 1)
        return np.searchsorted(self._key, pairs * self._span + offset, side="left") - self.pair_start[pairs]

    def user_count_before(self, upos: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
        """Events of each user strictly before its cutoff."""
        offset = np.clip(cutoffs - self._t0, 0, self._span - 1)
        return np.searchsorted(self._ukey, upos * self._span + offset, side="left") - self.user_start[upos]


@dataclass
class GroupData:
    """Candidates grouped by (user, cutoff), with everything a batch needs, unpadded.

    Attributes:
        index: the event index of the log.
        group_user_pos: per group, the user's row in ``index.users``.
        group_cutoff: per group, the cutoff T (epoch seconds).
        group_n_events: per group, the user's events before T.
        cand_start: CSR offsets of each group's candidates (length n_groups + 1).
        cand_row: per candidate, its row in the source frame (the period's examples).
        cand_cat: per candidate, its raw category id.
        cand_pair: per candidate, its pair index in ``index``.
        cand_n_before: per candidate, its pair's events before T.
        label: per candidate, the 0/1 label (NaN when unknown, as in encode).
        cand_next: per candidate, 1 if its category is that of the user's first event in
            [T, T + horizon) (the ranking target of decay_model.ranking), else 0; None when unknown.
        prior: per candidate, offsets of a prior model (log λ, log floor, logit level), [n, 3];
            zeros when there is none (see NeuralDecay's ``exponential_prior``).
    """

    index: EventIndex
    group_user_pos: np.ndarray
    group_cutoff: np.ndarray
    group_n_events: np.ndarray
    cand_start: np.ndarray
    cand_row: np.ndarray
    cand_cat: np.ndarray
    cand_pair: np.ndarray
    cand_n_before: np.ndarray
    label: np.ndarray
    prior: np.ndarray | None = None
    cand_next: np.ndarray | None = None

    def candidate_frame(self) -> pd.DataFrame:
        """user_id and category_id of every candidate, in the grouped (batch) order."""
        group = np.repeat(np.arange(self.n_groups), np.diff(self.cand_start))
        return pd.DataFrame(
            {"user_id": self.index.users[self.group_user_pos[group]], "category_id": self.cand_cat}
        )

    @classmethod
    def from_candidates(
        cls,
        index: EventIndex,
        frame: pd.DataFrame,
        labels: np.ndarray | None = None,
        horizon_seconds: int | None = None,
    ) -> GroupData:
        """Group a frame of (user_id, category_id, cutoff) rows; rows keep their position as ``cand_row``."""
        users = frame["user_id"].to_numpy().astype(np.int64)
        cats = frame["category_id"].to_numpy().astype(np.int64)
        cutoffs = frame["cutoff"].to_numpy().astype(np.int64)
        order = np.lexsort((cats, cutoffs, users))
        users, cats, cutoffs = users[order], cats[order], cutoffs[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (users[1:] != users[:-1]) | (cutoffs[1:] != cutoffs[:-1])
        starts = np.flatnonzero(new)
        g_user = index.user_pos(users[starts])
        g_cut = cutoffs[starts]
        pair = _pair_lookup(index, users, cats)
        n_before = index.pair_count_before(pair, cutoffs)
        y = np.full(len(order), np.nan) if labels is None else np.asarray(labels, dtype=np.float64)[order]
        g_n = index.user_count_before(g_user, g_cut)
        cand_next = None
        if horizon_seconds is not None:
            pos = index.user_start[g_user] + g_n  # the user's first event at or after T
            ok = pos < index.user_end[g_user]
            pos = np.minimum(pos, len(index.ts) - 1)
            target = np.where(ok & (index.ts[pos] < g_cut + horizon_seconds), index.cat[pos], -1)
            group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(order))))
            cand_next = (cats == target[group]).astype(np.float64)
        return cls(
            index=index,
            group_user_pos=g_user,
            group_cutoff=g_cut,
            group_n_events=g_n,
            cand_start=np.append(starts, len(order)).astype(np.int64),
            cand_row=order.astype(np.int64),
            cand_cat=cats,
            cand_pair=pair,
            cand_n_before=n_before,
            label=y,
            cand_next=cand_next,
        )

    @classmethod
    def from_task(cls, task: EvalTask, period: str, index: EventIndex | None = None) -> GroupData:
        """The examples of one period of the evaluation task, with their labels."""
        ex = task.examples(period)
        return cls.from_candidates(
            index or EventIndex(task.log), ex, ex["label"].to_numpy(), task.config.seconds("horizon_hours")
        )

    @property
    def n_groups(self) -> int:
        """Number of (user, cutoff) groups."""
        return len(self.group_cutoff)

    @property
    def n_candidates(self) -> int:
        """Number of candidates (examples) over all groups."""
        return len(self.cand_row)

    def n_events(self, max_len: int) -> int:
        """Events the sequence encoder reads over one pass (each group's truncated sequence)."""
        return int(np.minimum(self.group_n_events, max_len).sum())

    def batches(
        self,
        batch_groups: int,
        vocab: np.ndarray,
        max_len: int,
        max_cat_events: int,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Padded batches of ``batch_groups`` groups, shuffled by ``generator`` when given.

        ``shard = (rank, size)`` yields rank's share of each batch (every size-th group of it, as
        ``DistributedSampler`` deals them): the ranks, given generators in the same state, draw
        the same order and together cover each batch. With more than one rank the order is first
        padded, by repeating its start, to a multiple of size; with ``batch_groups`` a multiple of
        size too (``distributed.join`` demands it), every rank gets an equal, non-empty share of
        every batch.
        """
        if generator is None:
            order = np.arange(self.n_groups)
        else:
            order = torch.randperm(self.n_groups, generator=generator).numpy()
        rank, size = shard
        if size > 1:
            order = np.resize(order, padded_groups(self.n_groups, size))
        for lo in range(0, len(order), batch_groups):
            yield self.batch(order[lo : lo + batch_groups][rank::size], vocab, max_len, max_cat_events)

    def batch(
        self, groups: np.ndarray, vocab: np.ndarray, max_len: int, max_cat_events: int
    ) -> dict[str, torch.Tensor]:
        """Pad the given groups into tensors (CPU); see :class:`~decay_model.neural.NeuralDecayNet`."""
        idx = self.index
        b = len(groups)
        # -- user sequences [B, L], right-aligned so the newest event is last -----------------
        n_seq = np.minimum(self.group_n_events[groups], max_len)
        stop = idx.user_start[self.group_user_pos[groups]] + self.group_n_events[groups]
        row = np.repeat(np.arange(b), n_seq)
        back = np.arange(n_seq.sum()) - np.repeat(np.cumsum(n_seq) - n_seq, n_seq)  # 0 = newest
        ev = np.repeat(stop, n_seq) - 1 - back
        col = max_len - 1 - back
        cut = np.repeat(self.group_cutoff[groups], n_seq)
        seq_cat = np.zeros((b, max_len), dtype=np.int64)
        seq_beh = np.zeros((b, max_len), dtype=np.int64)
        seq_time = np.zeros((b, max_len, 2), dtype=np.float32)
        seq_cat[row, col] = _vocab_lookup(vocab, idx.cat[ev])
        seq_beh[row, col] = idx.beh[ev] + 1
        prev = np.where(ev > idx.user_start[self.group_user_pos[groups]][row], ev - 1, ev)
        seq_time[row, col, 0] = np.log1p((idx.ts[ev] - idx.ts[prev]) / HOUR)
        seq_time[row, col, 1] = np.log1p((cut - idx.ts[ev]) / HOUR)
        # -- candidates and their own recent events [N, K] -----------------------------------
        c_lo, c_hi = self.cand_start[groups], self.cand_start[groups + 1]
        n_c = c_hi - c_lo
        cand = np.repeat(c_lo, n_c) + np.arange(n_c.sum()) - np.repeat(np.cumsum(n_c) - n_c, n_c)
        cand_group = np.repeat(np.arange(b), n_c)
        n_hist = np.minimum(self.cand_n_before[cand], max_cat_events)
        h_stop = idx.pair_start[self.cand_pair[cand]] + self.cand_n_before[cand]
        h_row = np.repeat(np.arange(len(cand)), n_hist)
        h_back = np.arange(n_hist.sum()) - np.repeat(np.cumsum(n_hist) - n_hist, n_hist)
        h_ev = np.repeat(h_stop, n_hist) - 1 - h_back
        c_cut = self.group_cutoff[groups][cand_group]
        hist_age = np.zeros((len(cand), max_cat_events), dtype=np.float32)
        hist_beh = np.zeros((len(cand), max_cat_events), dtype=np.int64)
        hist_age[h_row, h_back] = (np.repeat(c_cut, n_hist) - idx.pair_ts[h_ev]) / HOUR
        hist_beh[h_row, h_back] = idx.pair_beh[h_ev] + 1
        last_age = hist_age[:, 0]
        first = idx.pair_start[self.cand_pair[cand]]
        sessions = idx.pair_sessions_cum[h_stop - 1] - idx.pair_sessions_cum[first] + 1
        # The user's own activity right now, over every category: hours since the newest event
        # and events in the last day (within the max_len read).
        user_age = np.zeros(b, dtype=np.float64)
        user_age[row[back == 0]] = (cut[back == 0] - idx.ts[ev[back == 0]]) / HOUR
        user_day = np.bincount(row, weights=(cut - idx.ts[ev]) < 24 * HOUR, minlength=b)
        cand_feat = np.stack(
            [
                np.log1p(self.cand_n_before[cand]),
                np.log1p(last_age),
                np.log1p(self.group_n_events[groups])[cand_group],
                np.log1p(user_age)[cand_group],
                np.log1p(user_day)[cand_group],
                np.log1p(sessions),
                np.log1p((c_cut - idx.pair_ts[first]) / HOUR),
            ],
            axis=1,
        ).astype(np.float32)
        return {
            "seq_cat": torch.from_numpy(seq_cat),
            "seq_beh": torch.from_numpy(seq_beh),
            "seq_time": torch.from_numpy(seq_time),
            "cand_group": torch.from_numpy(cand_group.astype(np.int64)),
            "cand_cat": torch.from_numpy(_vocab_lookup(vocab, self.cand_cat[cand])),
            "cand_feat": torch.from_numpy(cand_feat),
            "hist_age": torch.from_numpy(hist_age),
            "hist_beh": torch.from_numpy(hist_beh),
            "label": torch.from_numpy(self.label[cand].astype(np.float32)),
            "prior": torch.from_numpy(
                np.zeros((len(cand), 3), np.float32)
                if self.prior is None
                else self.prior[cand].astype(np.float32)
            ),
            "is_next": torch.from_numpy(
                np.zeros(len(cand), np.float32)
                if self.cand_next is None
                else self.cand_next[cand].astype(np.float32)
            ),
            "cand_index": torch.from_numpy(cand),
        }


def padded_groups(n_groups: int, size: int) -> int:
    """Groups per epoch when ``size`` ranks share them: ``n_groups`` rounded up to a multiple of size."""
    return -(-n_groups // size) * size


def _pair_lookup(index: EventIndex, users: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Pair index of (user, category) rows, vectorised with one search on a combined key."""
    width = int(max(index.pair_cat.max(), cats.max())) + 1
    keys = index.pair_user * width + index.pair_cat
    want = users * width + cats
    pos = np.searchsorted(keys, want)
    if np.any(pos >= len(keys)) or np.any(keys[np.minimum(pos, len(keys) - 1)] != want):
        raise ValueError("a candidate (user, category) pair has no events in the log")
    return pos.astype(np.int64)


def build_vocab(index: EventIndex, before: int, min_count: int, max_size: int) -> np.ndarray:
    """Sorted raw category ids with at least ``min_count`` events before ``before`` (most frequent kept)."""
    cats = index.cat[index.ts < before]
    ids, counts = np.unique(cats, return_counts=True)
    keep = counts >= min_count
    ids, counts = ids[keep], counts[keep]
    if len(ids) > max_size:
        top = np.argsort(-counts, kind="stable")[:max_size]
        ids = ids[top]
    return np.sort(ids).astype(np.int64)


def _vocab_lookup(vocab: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Vocabulary index of raw category ids: 2 + position, or OOV."""
    if not len(vocab):
        return np.full(len(cats), OOV, dtype=np.int64)
    pos = np.clip(np.searchsorted(vocab, cats), 0, len(vocab) - 1)
    return np.where(vocab[pos] == cats, pos + 2, OOV).astype(np.int64)
