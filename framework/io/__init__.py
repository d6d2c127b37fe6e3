"""ROOT input and output: sources, the output module and the sample generator."""
