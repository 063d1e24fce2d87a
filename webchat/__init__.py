"""webchat: talk to raw TCP from a browser."""
