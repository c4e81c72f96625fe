"""The web UI (``tracker ui``) and the self-contained report (``tracker report``).

``app`` serves the pages, ``pages`` renders them from jinja2 templates, ``views`` gathers what
they show; ``report`` writes them into one HTML file.
"""

#: The port ``tracker ui`` listens on (on 127.0.0.1) unless told otherwise.
DEFAULT_PORT = 8500
