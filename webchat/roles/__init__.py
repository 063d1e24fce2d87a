"""The TCP side: a server for many peers or a client that reconnects, one protocol per peer."""
