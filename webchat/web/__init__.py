"""The HTTP side: the app factory, REST, `/ws`, the page and the guard in front of them."""
