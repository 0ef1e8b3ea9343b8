"""The user agent: UserAgent and Call, registration, accounts and the TOML configuration."""
