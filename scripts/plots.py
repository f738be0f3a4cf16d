"""The figures the scripts draw, from their library home ``agents.plots``."""

from __future__ import annotations

from agents.plots import (
    lambda_by_category,
    plot_lambda_by_category,
    plot_lifecycle,
    plot_reliability_per_model,
    plot_returns,
    pyplot,
    save_png,
)

__all__ = [
    "lambda_by_category",
    "plot_lambda_by_category",
    "plot_lifecycle",
    "plot_reliability_per_model",
    "plot_returns",
    "pyplot",
    "save_png",
]
