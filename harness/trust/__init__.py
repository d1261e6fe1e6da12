"""Trust: signed in-toto statements over a verified result, and the keys that sign them."""
