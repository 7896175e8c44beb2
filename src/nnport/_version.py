"""The version, on the ground floor (the generated code's header reads it)."""
__version__ = "0.1.0"
