"""The reader study's statistics: Obuchowski-Rockette MRMC, Fleiss' kappa and the per-reader analysis."""
