"""A folder on the Spillway machine's own disk: for trying Spillway out."""
