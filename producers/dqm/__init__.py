"""Data-quality monitoring: per-luminosity-section histograms (monitoring elements) filled from input branches
(``DQMHistogrammer``), written by ``RootOutputModule`` in DQM's folder naming and read back with
:func:`producers.dqm.read.read_lumi_histograms`."""
