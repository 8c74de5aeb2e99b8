"""hybrid stage of hybridrec."""
