"""Small shared helpers: atomic writes, progress, package versions, device choice, heap, settings files, fault points."""
