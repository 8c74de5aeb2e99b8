"""models stage of hybridrec."""
