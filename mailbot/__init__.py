"""mailbot: a support mailbox turned into a case system."""

__version__ = "0.1.0"
