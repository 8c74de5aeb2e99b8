"""data stage of hybridrec."""
