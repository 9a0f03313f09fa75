"""Corruption galleries: the `corrupt` command's galleries and copies, and the gallery of a run."""
