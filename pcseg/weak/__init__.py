"""Weak-label budgets: seeded samplers, index files in the ScanNet data-efficient format, merging rounds."""
from pcseg.weak.budget import (
    Budget,
    BudgetSpec,
    apply_budget,
    budget_stats,
    check_indices,
    format_budget_stats,
    merge_budgets,
    parse_budget,
    read_budget,
    sample_budget,
    write_budget,
)

__all__ = [
    "Budget", "BudgetSpec", "apply_budget", "budget_stats", "check_indices", "format_budget_stats",
    "merge_budgets", "parse_budget", "read_budget", "sample_budget", "write_budget",
]
