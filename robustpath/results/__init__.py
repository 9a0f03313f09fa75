"""The tidy results table and the summaries computed from it (robustness, chance levels, the JSON run summary)."""
