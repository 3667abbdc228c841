"""The drawing app: write a number by hand, read it back."""
