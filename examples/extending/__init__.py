"""Examples: user extensions of nasx (see README, "Extending nasx")."""
