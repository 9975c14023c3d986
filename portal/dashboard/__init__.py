"""The supervision dashboard."""
