"""The stanch front ends: the command line and the Textual console."""
