"""What defines a run: RunSpec, a frozen dataclass that validates its own values."""
