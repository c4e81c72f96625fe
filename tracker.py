"""``python -m tracker``: the ploomber_like command line."""

if __name__ == "__main__":
    from ploomber_like.cli import main

    main()
