"""``trustwire up``/``down``: a whole Trustwire deployment on one machine, and a demo on it.

Modules: ``scenario`` (what the examples declare: PUs, policies, expected verdicts),
``state`` (the state directory: what was started, so ``down`` can undo it), ``processes``
(child processes and bounded waits), ``topology`` (network namespaces), ``control_plane``
(calls to the identity and policy services), ``traffic`` (servers and probes inside PUs),
``process_agent`` (the command a process PU runs, a standalone script),
``report`` (the table and the comparison with ``trustwire simulate``), ``deployment``
(the sequence that ties them together).
"""
