"""The plan advisor: the provably cheapest mix of plan offers for past usage."""
