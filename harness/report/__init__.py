"""Turning run folders into a report: the HTML page (html), its figures (figures), side-by-side comparison of runs
(compare) and PNG screenshots of the page (screenshot)."""
