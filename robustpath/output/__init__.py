"""Output folders: locking, owned files, run folder life (start, resume, finish), per-sample exports, and the report."""
