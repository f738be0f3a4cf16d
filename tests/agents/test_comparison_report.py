from agents.comparison_report import fmt_ci, lifecycle_cell, tuned_line


def test_intervals_print_as_mean_and_bounds_or_a_dash():
    assert fmt_ci({"mean": 0.5, "ci_low": 0.25, "ci_high": 0.75}) == "0.500 [0.250, 0.750]"
    assert fmt_ci({"mean": 0.5, "ci_low": 0.25, "ci_high": 0.75}, 1) == "0.5 [0.2, 0.8]"
    assert fmt_ci(None) == "-" and fmt_ci({"mean": float("nan")}) == "-"


def test_a_lifecycle_cell_gives_the_three_shares_and_the_decisions():
    rows = [
        {"bucket": "lt6h", "action": a, "share": s, "decisions": 10}
        for a, s in (("show", 0.5), ("reduce", 0.3), ("retire", 0.2))
    ]
    rows += [
        {"bucket": "ge1w", "action": a, "share": 0.0, "decisions": 0} for a in ("show", "reduce", "retire")
    ]
    assert lifecycle_cell(rows, "lt6h") == "0.50/0.30/0.20 (n=10)"
    assert lifecycle_cell(rows, "ge1w") == "-"


def test_the_tuned_line_names_the_rules_evaluated():
    tuned = {
        "tuned": {"threshold": {"show_above": 0.4, "retire_below": 0.1}},
        "custom": {"m:Rule": {"tuned": {"cutoff": 0.3}}, "m:Other": {"tuned": {"cutoff": 0.1}}},
    }
    assert tuned_line(tuned, ["threshold", "m:Rule"]) == (
        "threshold: show_above=0.4, retire_below=0.1; m:Rule: cutoff=0.3"
    )
