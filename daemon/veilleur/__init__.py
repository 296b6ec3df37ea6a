"""veilleur: the night watchman of an AWS estate."""

__version__ = "0.1.0"
