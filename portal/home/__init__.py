"""The home page made for each role, and its blocks' live refresh."""
