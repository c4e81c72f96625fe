"""The web UI (``tracker ui``) and the self-contained report (``tracker report``).

``app`` serves the pages, ``pages`` renders them from jinja2 templates, ``views`` gathers what
they show; ``report`` writes them into one HTML file.
"""
