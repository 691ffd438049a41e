"""Allen Brain Observatory (Visual Coding 2P, natural scenes): synthetic cache, loading, responses."""
