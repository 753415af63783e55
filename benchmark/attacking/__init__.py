"""Attack machinery shared by the registered attacks: torch attacks, ART adapter, operating point."""
