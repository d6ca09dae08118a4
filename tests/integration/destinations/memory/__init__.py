"""An in-memory object store, written as a new kind would be: this folder and one registry line."""
