"""envs: the Gymnasium simulator of users whose interest decays (not built yet)."""
