"""agents: policies and their evaluation against the threshold baseline (not built yet)."""
