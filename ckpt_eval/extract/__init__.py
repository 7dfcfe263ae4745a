"""Feature extraction: everything that imports torch (Inception, CLIP, devices), run by the
feature jobs only."""
