"""Who the simulated users are and what they can be shown: the population and the catalogue.

Users come from a population summary (``decay_model.population.summarize_population``:
per category the mean and sd of log λ and of logit floor, the mean interest and
the category's share) or are bootstrapped from encoded real users
(``model.encode(log, at)``). Every draw is counter-based (``envs.rng``), so a
user depends only on its key and episode number.

A user holds up to ``max_user_categories`` categories; each has a true interest
I (probability scale), a decay rate λ (1/hour) and a floor b, moving between
visits as I ← b + (I - b)·e^{-λΔ}. Retrieval draws fresh candidates from the
user's categories in proportion to their weights, from the catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from decay_model.cards import PRETRAINED
from decay_model.errors import ConfigError
from envs import rng
from envs.config import SimConfig

if TYPE_CHECKING:
    import pandas as pd

#: The built-in default population: 12 categories whose half-lives span about 2 h to 1 day
#: (λ log-spaced over 0.03-0.4 per hour, the range of decay_model.synthetic's default
#: generator), Zipf(0.8) shares, floors around 2-5 % and mean interest around 0.25.
#: Small documented constants, so that the package runs without any data or fit.
_DEFAULT_LAMBDAS = np.exp(np.linspace(math.log(0.03), math.log(0.4), 12))
_DEFAULT_SHARES = 1.0 / np.arange(1, 13) ** 0.8


def default_summary() -> dict[str, Any]:
    """The built-in population summary, in the format of ``summarize_population``."""
    shares = _DEFAULT_SHARES / _DEFAULT_SHARES.sum()
    cats = {}
    for j, (lam, share) in enumerate(zip(_DEFAULT_LAMBDAS, shares, strict=True)):
        floor = 0.02 + 0.03 * (j % 3) / 2
        cats[str(1000 + j)] = {
            "share": float(share),
            "log_lam_mean": float(math.log(lam)),
            "log_lam_sd": 0.4,
            "logit_floor_mean": float(math.log(floor / (1 - floor))),
            "logit_floor_sd": 0.5,
            "interest_mean": 0.25,
        }
    return {"n_users": 0, "categories_per_user": 4.0, "categories": cats, "source": "built-in default"}


@dataclass(frozen=True)
class Population:
    """Per-category distributions (index c = 0..C-1) and, optionally, real users to bootstrap.

    Attributes:
        names: category ids as in the summary, shape (C,).
        share: category shares (sum 1), shape (C,).
        log_lam_mean, log_lam_sd, logit_floor_mean, logit_floor_sd, interest_mean: shape (C,).
        real: None, or padded arrays of real users (``cat``, ``lam``, ``floor``, ``interest``,
            ``weight``), each shape (U, max_user_categories); weight 0 marks padding.
        source: where it came from, for cards and reprs.
    """

    names: tuple[str, ...]
    share: NDArray[np.float64]
    log_lam_mean: NDArray[np.float64]
    log_lam_sd: NDArray[np.float64]
    logit_floor_mean: NDArray[np.float64]
    logit_floor_sd: NDArray[np.float64]
    interest_mean: NDArray[np.float64]
    real: dict[str, NDArray[Any]] | None = None
    source: str = ""

    @property
    def num_categories(self) -> int:
        """C, the number of categories (the catalogue has one block of items per category)."""
        return len(self.names)

    @classmethod
    def from_summary(cls, summary: dict[str, Any], source: str = "summary") -> Population:
        """From a ``summarize_population`` dict (e.g. an artifact's population.json)."""
        cats = summary.get("categories")
        if not isinstance(cats, dict) or not cats:
            raise ConfigError(f"population summary from {source}: no categories")
        names = tuple(str(k) for k in cats)

        def col(key: str, default: float | None = None) -> NDArray[np.float64]:
            out = []
            for name in names:
                value = cats[name].get(key, default)
                if value is None or not math.isfinite(float(value)):
                    value = default
                if value is None:
                    raise ConfigError(f"population summary from {source}: category {name} lacks {key!r}")
                out.append(float(value))
            return np.asarray(out)

        share = np.clip(col("share"), 0.0, None)
        if share.sum() <= 0:
            raise ConfigError(f"population summary from {source}: category shares sum to 0")
        return cls(
            names=names,
            share=share / share.sum(),
            log_lam_mean=col("log_lam_mean"),
            log_lam_sd=np.clip(col("log_lam_sd", 0.0), 0.0, None),
            logit_floor_mean=col("logit_floor_mean"),
            logit_floor_sd=np.clip(col("logit_floor_sd", 0.0), 0.0, None),
            interest_mean=np.clip(col("interest_mean", 0.25), 1e-4, 1 - 1e-4),
            source=source,
        )

    @classmethod
    def from_encoded(
        cls,
        encoded: pd.DataFrame,
        max_user_categories: int,
        source: str = "encoded",
        activity: pd.DataFrame | None = None,
    ) -> Population:
        """Bootstrap real users: each draw picks one encoded user (their most active categories).

        A user with fewer than ``max_user_categories`` categories gets the most common other
        categories of the population at their floor (interests they may still discover).
        ``activity`` (``decay_model.activity.fit_activity(...).per_user``) gives the users' own
        return times, browsing depth and categories re-engaged per visit; users missing there
        (or all, without it) draw them from the config's population distribution.
        """
        import pandas as pd  # only for bootstrapping real users: stepping needs none of it

        from decay_model.population import check_encoded, summarize_population

        check_encoded(encoded)
        base = cls.from_summary(summarize_population(encoded, top=10**9), source=source)
        index = {name: j for j, name in enumerate(base.names)}
        frame = encoded.sort_values(["user_id", "n_events"], ascending=[True, False], kind="stable")
        frame = frame[frame.groupby("user_id").cumcount() < max_user_categories]
        users = frame["user_id"].to_numpy()
        codes, uniq = pd.factorize(users)
        slot = frame.groupby("user_id").cumcount().to_numpy()
        shape = (len(uniq), max_user_categories)
        popular = np.argsort(-base.share, kind="stable")[: 2 * max_user_categories].astype(np.int32)
        floors = _sigmoid(base.logit_floor_mean).astype(np.float32)
        real: dict[str, NDArray[Any]] = {
            "cat": np.zeros(shape, np.int32),
            "lam": np.ones(shape, np.float32),
            "floor": np.zeros(shape, np.float32),
            "interest": np.zeros(shape, np.float32),
            "weight": np.zeros(shape, np.float32),
        }
        real["cat"][codes, slot] = [index[str(c)] for c in frame["category_id"]]
        real["lam"][codes, slot] = frame["lam"].to_numpy()
        real["floor"][codes, slot] = frame["floor"].to_numpy()
        real["interest"][codes, slot] = frame["interest"].to_numpy()
        real["weight"][codes, slot] = frame["n_events"].to_numpy()
        counts = np.bincount(codes, minlength=len(uniq))
        for u in np.nonzero(counts < max_user_categories)[0]:  # once per short user, at load time
            have = set(real["cat"][u, : counts[u]].tolist())
            pad = [c for c in popular if c not in have][: max_user_categories - counts[u]]
            j = slice(counts[u], counts[u] + len(pad))
            real["cat"][u, j] = pad
            real["lam"][u, j] = np.exp(base.log_lam_mean[pad])
            real["floor"][u, j] = floors[pad]
            real["interest"][u, j] = floors[pad]
        real["estimate"] = real["interest"].copy()  # the system knows what the model encoded
        real["gap_mu"] = np.full(len(uniq), np.nan, np.float32)
        real["events_extra"] = np.full(len(uniq), np.nan, np.float32)
        real["budget"] = np.full(len(uniq), np.nan, np.float32)
        if activity is not None:
            act = activity.set_index("user_id").reindex(uniq)
            real["gap_mu"][:] = act["gap_log_mu"].to_numpy()
            real["events_extra"][:] = act["events_mean"].to_numpy() - 1.0
            if "repeat_per_visit" in act:
                real["budget"][:] = act["repeat_per_visit"].to_numpy()
        return cls(**{**base.__dict__, "real": real, "source": f"{source} (bootstrap of {len(uniq)} users)"})

    @classmethod
    def from_config(cls, config: SimConfig) -> Population:
        """The artifact's population if ``config.artifact`` is set, else the shipped Taobao one.

        The shipped one is ``decay_model/pretrained/taobao_neural``'s summary (201 categories of
        the Taobao log); the 12-category ``default_summary`` constants stand in only if the
        package lacks it.
        """
        if config.artifact is None:
            return _default_population()
        return _artifact_population(str(config.artifact))

    def draw(
        self, config: SimConfig, key: NDArray[np.uint64], episode: NDArray[np.uint64]
    ) -> dict[str, NDArray[Any]]:
        """Draw one user per (key, episode) pair; arrays of shape (n, max_user_categories) and (n,).

        Returns ``cat`` (int32 category index), ``lam`` (1/hour), ``floor``, ``interest`` (true,
        probability scale), ``estimate`` (the system's starting estimate: the category's mean
        interest for a new user, the encoded interest for a real one), ``weight`` (the category's
        weight in the user's history or the population; informative only), and per user
        ``gap_mu`` (μ_u of the return time), ``events_extra`` (mean events beyond the first
        per engaged category) and ``budget`` (r_u, the tracked categories a visit re-engages in
        budget mode: a real user's own when the bootstrap has it, else drawn around
        ``config.engagement_budget`` with ``config.engagement_budget_user_sd``).
        """
        n, width = len(key), config.max_user_categories
        base = population_stream(key, episode)
        if self.real is not None:
            num_real = len(self.real["cat"])
            pick = np.minimum((rng.uniform(base, WORD_PICK) * num_real).astype(np.int64), num_real - 1)
            return self.pick_real(config, pick, base)
        gap_mu, extra, budget = self._activity(config, base)
        num_cat = self.num_categories
        # every draw of a new user from one stream: C Gumbel keys, then 3 x 2 x width uniforms
        u = rng.uniform(base[:, None], WORD_CATEGORIES + np.arange(num_cat + 6 * width)[None, :])
        gumbel = -np.log(-np.log(u[:, :num_cat]))  # categories without replacement, by share: Gumbel top-k
        scores = np.log(np.maximum(self.share, 1e-300))[None, :] + gumbel
        take = min(width, num_cat)
        cat = np.argsort(-scores, axis=1, kind="stable")[:, :take].astype(np.int32)
        if take < width:  # fewer categories than a user tracks: repeat them
            cat = np.resize(cat, (n, width)) if n else np.zeros((0, width), np.int32)
        pairs = u[:, num_cat:].reshape(n, 2, 3, width)  # Box-Muller: (radius, angle) x 3 normals
        z = np.sqrt(-2.0 * np.log(pairs[:, 0])) * np.cos(2.0 * np.pi * pairs[:, 1])
        z_lam, z_floor, z_int = z[:, 0], z[:, 1], z[:, 2]
        lam = np.exp(self.log_lam_mean[cat] + self.log_lam_sd[cat] * z_lam)
        floor = _sigmoid(self.logit_floor_mean[cat] + self.logit_floor_sd[cat] * z_floor)
        mean = self.interest_mean[cat]
        interest = _sigmoid(np.log(mean / (1 - mean)) + config.initial_interest_sd * z_int)
        return {
            "cat": cat,
            "lam": np.clip(lam, 1e-6, 1e3).astype(np.float32),
            "floor": floor.astype(np.float32),
            "interest": interest.astype(np.float32),
            "estimate": mean.astype(np.float32),
            "weight": self.share[cat].astype(np.float32),
            "gap_mu": gap_mu,
            "events_extra": extra,
            "budget": budget,
        }

    def _activity(
        self, config: SimConfig, base: NDArray[np.uint64]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """A new user's return-time mean μ_u, mean extra events per engaged category and budget r_u."""
        z_gap = rng.normal(base, WORD_GAP, WORD_GAP + 1)
        z_events = rng.normal(base, WORD_EVENTS, WORD_EVENTS + 1)
        gap_mu = (config.gap_log_mean + config.gap_log_user_sd * z_gap).astype(np.float32)
        extra = np.exp(config.events_log_mean + config.events_log_user_sd * z_events).astype(np.float32)
        b, sd = config.engagement_budget, config.engagement_budget_user_sd
        if b > 0 and sd > 0:  # log-normal with mean b and sd sd
            sigma = np.sqrt(np.log1p((sd / b) ** 2))
            z_budget = rng.normal(base, WORD_BUDGET, WORD_BUDGET + 1)
            budget = (b * np.exp(sigma * z_budget - sigma**2 / 2)).astype(np.float32)
        else:
            budget = np.full(len(base), b, np.float32)
        return gap_mu, extra, budget

    def pick_real(
        self, config: SimConfig, pick: NDArray[np.int64], base: NDArray[np.uint64]
    ) -> dict[str, NDArray[Any]]:
        """Real users ``pick``; activity the bootstrap lacks is drawn from the config (stream ``base``)."""
        assert self.real is not None
        out = {k: v[pick].copy() for k, v in self.real.items()}
        gap_mu, extra, budget = self._activity(config, base)
        out["gap_mu"] = np.where(np.isnan(out["gap_mu"]), gap_mu, out["gap_mu"]).astype(np.float32)
        out["events_extra"] = np.where(np.isnan(out["events_extra"]), extra, out["events_extra"]).astype(
            np.float32
        )
        out["budget"] = np.where(np.isnan(out["budget"]), budget, out["budget"]).astype(np.float32)
        return out


# words of a user's population stream (rng.DRAW_POPULATION at visit 0): which real user, the activity
# normals (two words each), then the categories' Gumbel keys and the 6 x width uniforms of a new user
WORD_PICK, WORD_GAP, WORD_EVENTS, WORD_BUDGET, WORD_CATEGORIES = 0, 1, 3, 5, 8


def population_stream(key: NDArray[np.uint64], episode: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """The stream a user is drawn from at the start of an episode, shape (n,)."""
    return rng.stream(key, episode, 0, rng.DRAW_POPULATION)


def _sigmoid(x: NDArray[Any]) -> NDArray[Any]:
    return 1.0 / (1.0 + np.exp(-x))


@lru_cache(maxsize=1)
def _default_population() -> Population:
    """The shipped Taobao population when the package carries it, else the built-in constants."""
    if (PRETRAINED / "population.json").is_file():
        return _artifact_population(str(PRETRAINED))
    return Population.from_summary(default_summary(), source="built-in default")


@lru_cache(maxsize=8)
def _artifact_population(path: str) -> Population:
    from decay_model.cards import load_population

    return Population.from_summary(load_population(path), source=f"artifact {path}")


@dataclass(frozen=True)
class Catalogue:
    """Items per category: item g = c·items_per_category + j belongs to category c.

    Attributes:
        quality: shape (C·I,), in (0, 1): multiplier of the click chance.
        value: shape (C·I,), > 0: the purchase margin (reward of a purchase).
        items_per_category: I.
    """

    quality: NDArray[np.float32]
    value: NDArray[np.float32]
    items_per_category: int

    @classmethod
    def build(cls, config: SimConfig, num_categories: int) -> Catalogue:
        """Draw the catalogue from ``config.catalogue_seed`` (same config, same catalogue)."""
        gen = np.random.Generator(np.random.PCG64(config.catalogue_seed))
        size = num_categories * config.items_per_category
        return cls(
            quality=gen.beta(config.quality_a, config.quality_b, size).astype(np.float32),
            value=np.exp(gen.normal(config.value_log_mean, config.value_log_sd, size)).astype(np.float32),
            items_per_category=config.items_per_category,
        )
