"""The live roulette board for supervisors."""
