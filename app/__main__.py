"""`python -m app ...`: the image-catalogue command."""

from app.cli.main import main

main()
