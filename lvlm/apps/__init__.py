"""Applications: the ``lvlm`` command and its tools. Nothing in lvlm's library layers imports them."""
