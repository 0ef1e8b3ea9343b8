"""The sans-I/O SIP core: transactions and dialogs (RFC 3261), PRACK and session timers."""
