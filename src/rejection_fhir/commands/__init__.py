"""Exactly one module per CLI command, named as its shim in ``rejection_fhir.cli`` (``list``
is :mod:`.listing`, ``smart-keygen`` :mod:`.smart_keygen`): importable, typed functions
without click; ``rejection_fhir.cli`` only parses options and prints.  Helpers that are not
a command live in their package (the version guard in ``worksheet/``, the preview server
in ``preview/``); tests/unit/commands/test_one_module_per_command.py keeps it so."""
