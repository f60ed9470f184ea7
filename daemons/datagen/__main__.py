"""`python -m daemons.datagen`: runs the command of daemons.datagen.cli."""

from daemons.datagen.cli import main

if __name__ == "__main__":
    main()
