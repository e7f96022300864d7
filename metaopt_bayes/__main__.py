"""`python -m metaopt_bayes` runs the metaopt CLI."""

from metaopt_bayes.cli import main

main()
