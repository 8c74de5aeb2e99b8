"""training stage of hybridrec."""
