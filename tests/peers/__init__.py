"""Launchers for the independent peers the suite tests against (one module per peer).

Every peer is a real program installed by ``scripts/install-peers.sh``. A missing binary is a
test failure (:func:`require_binary`), never a skip.
"""
