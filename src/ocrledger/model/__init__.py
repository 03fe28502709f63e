"""The billing model as data: money, time, the catalog, accounts and plans, credentials, bills."""
