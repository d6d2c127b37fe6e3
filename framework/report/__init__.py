"""Reports a physicist reads: self-contained HTML pages (:mod:`.html`), plots chosen by what each product is
(:mod:`.plotspec`, declared beside the producers in ``producers/<algo>/plots.py``), drawn by :mod:`.plots`."""
