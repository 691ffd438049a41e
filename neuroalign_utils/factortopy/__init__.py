"""FactorTopy (Yang, Gee & Shi 2024): which layer, where and at what scale each vertex reads."""
