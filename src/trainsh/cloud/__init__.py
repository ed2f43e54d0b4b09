"""GPU clouds behind one interface (provider.py): Vast.ai, RunPod; pricing."""
