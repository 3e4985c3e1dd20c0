"""`python -m backend.datagen`: see backend.datagen.cli."""
from backend.datagen.cli import main

main(prog_name="python -m backend.datagen")
