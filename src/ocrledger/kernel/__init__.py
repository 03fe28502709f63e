"""The rating kernel: its contract (dataclasses of numpy arrays), the compiled pass, the plain-Python twin, the selector."""
