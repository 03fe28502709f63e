"""Inputs: call records and account tables read from files, frames and Arrow data into validated columns."""
