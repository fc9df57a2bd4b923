"""polaris-agent: tail log files and ship them to the Imply Polaris Events API, at least once."""

__version__ = "0.1.0"
