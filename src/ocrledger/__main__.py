"""``python -m ocrledger``: the command line."""
from .cli.main import run

run()
