"""ROOT input and output: sources and the output module (the sample generators are in framework.samples)."""
