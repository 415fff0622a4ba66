"""The left column's list of requests, rooms and contacts, and the people nearby."""
