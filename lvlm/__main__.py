"""``python -m lvlm`` is the ``lvlm`` command (what ``torchrun -m lvlm`` needs)."""

from lvlm.apps.cli import main

if __name__ == "__main__":
    main()
