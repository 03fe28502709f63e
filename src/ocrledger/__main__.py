"""``python -m ocrledger``: the command line."""
from .cli import run

run()
