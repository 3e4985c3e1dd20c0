"""`python -m backend.datagen`: see backend.datagen.command."""
from backend.datagen.command import main

main(prog_name="python -m backend.datagen")
