"""Call testing: TOML scenarios run against a peer, ladder diagrams, pcap export and the demo."""
