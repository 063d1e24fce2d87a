"""The room and its automation: the auto-responder (rules, timers), later names and snippets."""
