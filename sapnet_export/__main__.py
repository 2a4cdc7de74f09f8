"""``python -m sapnet_export`` runs the ``sapnet-export`` command."""

from .cli import main

main()
