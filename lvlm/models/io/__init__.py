"""Reading and writing weight files and resolving checkpoint directories: the lowest floor of ``lvlm.models``."""
