"""The model lifecycle shared by every model family."""
