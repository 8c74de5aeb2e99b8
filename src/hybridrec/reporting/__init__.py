"""reporting stage of hybridrec."""
