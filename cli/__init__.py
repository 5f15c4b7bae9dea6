"""The `ragar-data` command-line application: thin click commands over library functions."""
