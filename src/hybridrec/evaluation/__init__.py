"""evaluation stage of hybridrec."""
