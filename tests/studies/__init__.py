"""The research studies: the core mechanism of each, tested on small cases."""
