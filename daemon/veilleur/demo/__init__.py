"""``veilleur demo``: the whole pipeline against local emulators, the reference story played out."""
