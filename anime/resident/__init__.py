"""A resident `anime`: a process that has already imported what the database commands need, and
forks one child per command (as Rails' spring or Gradle's daemon do). `anime story log` then
costs a fork, not a second of imports. client.py is the console script; server.py the resident
process; protocol.py what both must agree on."""
